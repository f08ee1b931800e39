"""KFP component: a fingerprint of the data, so that caching follows its content and not its name."""
from kfp import dsl

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def fingerprint(data_uri: str) -> str:
    """Returns what changes whenever the data changes: an object's generation or ETag, a local file's sha256.

    KFP caches a step on its inputs, and a file changed in place keeps its URI. The pipeline runs this step
    uncached and gives its output to ingest, so ingest (and everything after it) is read from the cache
    exactly when the data is the same.

    Args:
        data_uri: Local path, file://, gs://, s3:// or minio:// URI of the data.

    Returns:
        The fingerprint, e.g. "etag=9b2cf535f27731c974343645a3985328 size=13478".
    """
    from kubeline.components.fingerprint.config import CONFIG
    from kubeline.core import storage
    from kubeline.core.config import from_inputs

    config = from_inputs(CONFIG, locals())
    found = storage.fingerprint(config.data_uri, "data_uri")
    print(f"fingerprint: {config.data_uri}: {found}")
    return found
