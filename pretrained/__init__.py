"""Weight files forgelab knows (``manifest.yaml``) and the small ones it ships (``mesonet/``).

Nothing here loads anything: :mod:`common.weights` reads the manifest and the files. Large weight files are
user-provided and git-ignored; put them in this folder, in ``$FORGELAB_WEIGHTS``, or in the torch hub cache.
"""
