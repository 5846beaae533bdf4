"""OCI images of builds: Kiln's image engine, without a container daemon.

Where things are:

- :mod:`~appliance.oci.layout`: the storage layout shared with the registry (blob keys,
  reference documents), media types, digests;
- :mod:`~appliance.oci.tarball`: deterministic layer archives (tar + gzip, hashed as written);
- :mod:`~appliance.oci.layers`: an environment split into layers (one per conda package, small
  ones grouped, the environment's own files last);
- :mod:`~appliance.oci.image`: the image config and manifest;
- :mod:`~appliance.oci.build`: assembling an image from a staged environment and storing it;
- :mod:`~appliance.oci.store`: images in storage (manifests, references, publishing blobs);
- :mod:`~appliance.oci.importer` / :mod:`~appliance.oci.export`: base images in from files
  (``kiln image import``), images out as OCI layouts;
- :mod:`~appliance.oci.collect`: garbage collection of blobs no image refers to.

The build pipeline (:mod:`appliance.builder.pipeline`) stages the environment for the in-image
prefix with rattler and calls :func:`~appliance.oci.build.assemble_image` and
:func:`~appliance.oci.build.store_image`; the worker's deletion jobs call
:func:`~appliance.oci.collect.collect_garbage`; the registry reads what is stored.
"""
