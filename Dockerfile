# brainleaks in a container: Python 3.10 (the version lava-nc 0.10 and lava-dl 0.6 require) and the wheel that
# `make wheel` writes to dist/.
#
#   make wheel
#   docker build -t brainleaks .
#   docker run --rm -v "$PWD/out:/out" brainleaks demo --out /out/demo
#
# The wheel carries the shipped models, the experiment configs and the vendored MNIST subset, so the demo runs
# offline. pip installs the dependencies from PyPI, where torch 2.3 comes with its CUDA libraries (about 2.5 GB).
# TORCH_INDEX names an extra index to take torch from, e.g. PyTorch's CPU-only wheels for a smaller image:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu -t brainleaks .
FROM python:3.10-slim

ARG TORCH_INDEX=
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

COPY dist/brainleaks_lava-*.whl /tmp/wheels/
RUN pip install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} /tmp/wheels/brainleaks_lava-*.whl \
    && rm -rf /tmp/wheels \
    && brainleaks --help >/dev/null

WORKDIR /work
ENTRYPOINT ["brainleaks"]
CMD ["--help"]
