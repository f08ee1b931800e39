"""One task's pod for the cluster-shaped run (tests/kfp_cluster.py): what KFP's launcher does inside the pod.

Run as ``unshare --mount --propagation private python kfp_pod.py POD_JSON``, so the mounts below are this pod's
alone. kubeflow/pipelines backend/src/v2/component/launcher_v2.go, in its order:
- ``LocalPathForURI``: ``gs://`` -> /gcs/, ``minio://`` -> /minio/, ``s3://`` -> /s3/ (private tmpfs mounts here, as
  the pod's own filesystem is on a cluster; /tmp/kfp too, where ``provisionOutputs`` (driver/driver.go) puts the
  output parameter files);
- ``downloadArtifacts``: every input artifact from the object store to its local path (objectstore.DownloadBlob:
  one object, or every object under the key as a folder);
- ``prepareOutputFolders``, then the user command with the pod's environment only (never the launcher's
  object-store keys: those are the launcher's, not the component's);
- ``getExecutorOutputFile``: protojson, which refuses NaN and Infinity;
- ``collectOutputParameters``: a parameter not in the executor output is read from its output file
  (metadata.TextToPbValue by the declared type);
- ``uploadOutputArtifacts``: each output artifact's local path to its URI, metadata merged from the executor output
  (mergeRuntimeArtifacts); a missing local path is a warning, not an error.
The result (executor output + output artifacts, or the failure) is written to POD_JSON's ``result`` path.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

from kubeline.pipelines.backend_rules import strict_json

MOUNTS = ("/gcs", "/minio", "/s3", "/tmp/kfp")
LOCAL_PREFIX = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}


def local_path(uri: str) -> str:
    for prefix, mount in LOCAL_PREFIX.items():
        if uri.startswith(prefix):
            return mount + uri[len(prefix):]
    raise ValueError(f"failed to generate local path for URI {uri}: unsupported storage scheme")


class Bucket:
    """The launcher's own view of an object store: KFP gives it the store's endpoint and keys (the kfp-launcher
    ConfigMap and mlpipeline-minio-artifact Secret), not the component."""

    def __init__(self, config: dict):
        self.config = config
        self._s3 = self._gcs = None

    def _split(self, uri: str):
        scheme, rest = uri.split("://", 1)
        bucket, _, key = rest.partition("/")
        return scheme, bucket, key

    def s3(self, scheme: str):
        import boto3
        from botocore.config import Config

        endpoint = self.config["minio_endpoint"] if scheme == "minio" else self.config["s3_endpoint"]
        return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=self.config["access_key"],
                            aws_secret_access_key=self.config["secret_key"], region_name=self.config["region"],
                            config=Config(s3={"addressing_style": "path"}))

    def gcs(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="kfp-launcher", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.config["gcs_endpoint"]})

    def download(self, uri: str, target: str) -> None:
        scheme, bucket, key = self._split(uri)
        if scheme == "gs":
            blobs = list(self.gcs().bucket(bucket).list_blobs(prefix=key))
            objects = [(b.name, b.download_to_filename) for b in blobs]
        else:
            client = self.s3(scheme)
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            names = [item["Key"] for page in pages for item in page.get("Contents", [])]
            objects = [(name, lambda path, name=name: client.download_file(bucket, name, path)) for name in names]
        if not objects:
            raise FileNotFoundError(f"no object at {uri}")
        for name, fetch in objects:
            if name != key and not name.startswith(key.rstrip("/") + "/"):
                continue  # a sibling that only shares the prefix
            path = Path(target) / name[len(key):].lstrip("/") if name != key else Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            fetch(str(path))

    def upload(self, source: str, uri: str) -> int:
        scheme, bucket, key = self._split(uri)
        source = Path(source)
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for path in files:
            name = key if path == source else f"{key.rstrip('/')}/{path.relative_to(source).as_posix()}"
            if scheme == "gs":
                self.gcs().bucket(bucket).blob(name).upload_from_filename(str(path))
            else:
                self.s3(scheme).upload_file(str(path), bucket, name)
        return len(files)


def text_to_value(text: str, parameter_type: str):
    """metadata.TextToPbValue: a parameter output file's text by its declared type."""
    if parameter_type == "STRING":
        return text
    if parameter_type in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
        return float(text) if parameter_type == "NUMBER_DOUBLE" else int(text)
    if parameter_type == "BOOLEAN":
        return {"true": True, "false": False}[text]
    return strict_json(text)


def main(pod_file: str) -> int:
    pod = json.loads(Path(pod_file).read_text())
    for mount in MOUNTS:
        subprocess.run(["mount", "-t", "tmpfs", "kfp-pod", mount], check=True)
    executor_input = pod["executor_input"]
    bucket = Bucket(pod["launcher"])
    result = {"state": "FAILED"}
    try:
        for listing in executor_input["inputs"].get("artifacts", {}).values():
            for artifact in listing["artifacts"]:
                bucket.download(artifact["uri"], local_path(artifact["uri"]))
        for parameter in executor_input["outputs"].get("parameters", {}).values():
            Path(parameter["outputFile"]).parent.mkdir(parents=True, exist_ok=True)
        for listing in executor_input["outputs"].get("artifacts", {}).values():
            Path(local_path(listing["artifacts"][0]["uri"])).parent.mkdir(parents=True, exist_ok=True)
        with open(pod["log"], "w") as log:
            returncode = subprocess.run(pod["command"], env=pod["env"], cwd=pod["cwd"], stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        if returncode != 0:
            result["error"] = f"the component exited with {returncode}"
            return 1
        output_file = Path(executor_input["outputs"]["outputFile"])
        executor_output = strict_json(output_file.read_text()) if output_file.is_file() else {}
        parameters = executor_output.get("parameterValues", {})
        for name, parameter in executor_input["outputs"].get("parameters", {}).items():
            if name not in parameters:
                parameters[name] = text_to_value(Path(parameter["outputFile"]).read_text(), pod["output_types"][name])
        artifacts = {}
        for name, listing in executor_input["outputs"].get("artifacts", {}).items():
            artifact = dict(listing["artifacts"][0])
            written = (executor_output.get("artifacts", {}).get(name) or {}).get("artifacts") or []
            if written:
                artifact["metadata"] = {**artifact.get("metadata", {}), **written[0].get("metadata", {})}
            path = local_path(artifact["uri"])
            artifact["uploaded_files"] = bucket.upload(path, artifact["uri"]) if os.path.exists(path) else 0
            artifacts[name] = artifact
        result = {"state": "SUCCEEDED", "parameters": parameters, "artifacts": artifacts}
        return 0
    except Exception as error:  # the launcher's own failure fails the task, with its message
        result["error"] = f"launcher: {type(error).__name__}: {error}"
        return 1
    finally:
        Path(pod["result"]).write_text(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
