"""The toolkit's exceptions.

Every error a user can cause (bad file, bad argument, missing dataset) is a ``BrainleaksError``;
the CLI prints its message on one line (what, which file or field, what was expected) and exits with
status 2 (``--debug`` shows the traceback instead); Ctrl-C prints one line and exits with 130. The
readers of untrusted files (``models.files``, ``attacks.recon_file``, ``report.config``) raise nothing
else on bad content: h5py, numpy, JSON and TOML failures are wrapped with the file's name.

- ``InputError``: a value or array handed in is wrong (shape, range, NaN, non-binary spikes).
  It is also a ``ValueError``, so ``except ValueError`` keeps working.
- ``DatasetError``: a dataset directory is missing or its files are malformed.
- ``ModelFileError``: a model (.net / .h5, or a .net's JSON sidecar) or reconstruction file is unreadable,
  truncated, corrupt or inconsistent.
- ``OutputError``: an output path would overwrite an input, is a directory or cannot be written (the OS
  error at write time is reported with the path; the previous file stays intact).
- ``ConfigError``: an experiment config has an unknown key, a wrong type or value, or a name that is not
  a plain file name (names become file names in the run directory).
"""


class BrainleaksError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class InputError(BrainleaksError, ValueError):
    """A value, array or argument does not have the expected shape, range or type."""


class DatasetError(BrainleaksError):
    """A dataset directory is missing, incomplete or malformed."""


class ModelFileError(BrainleaksError):
    """A model or result file cannot be read or does not describe a usable network."""


class ConfigError(InputError):
    """An experiment config has an unknown key, a missing key or a wrong type."""


class OutputError(BrainleaksError, OSError):
    """An output path cannot be written: it is one of the command's inputs, an existing directory, in a
    directory that does not exist or is not writable, or the OS refused the write (disk full, read-only).
    It is also an ``OSError``, so ``except OSError`` around a write keeps working."""
