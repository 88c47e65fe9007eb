"""Checks the Secret Manager fake (gcp_secretmanager.py) with Google's official Python client,
over REST, for every call the Rust `gcp_secretmanager` target makes, asserting the answers.

    REQUESTS_CA_BUNDLE=.servers/tls/ca.pem python check_gcp_secretmanager.py ENDPOINT TOKEN

ENDPOINT is `https://127.0.0.1:PORT`; TOKEN the fake's bearer token. Exits non-zero (an
AssertionError or the client's exception) on the first difference. Run by
crates/engine/tests/fake_gcp_contract.rs.
"""

import json
import sys
import uuid

import requests

from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.cloud import secretmanager
from google.oauth2.credentials import Credentials
from google.protobuf import field_mask_pb2

State = secretmanager.SecretVersion.State


STATUS_OF = {
    "AlreadyExists": (409, "ALREADY_EXISTS"),
    "InvalidArgument": (400, "INVALID_ARGUMENT"),
    "FailedPrecondition": (400, "FAILED_PRECONDITION"),
    "NotFound": (404, "NOT_FOUND"),
    "Unauthenticated": (401, "UNAUTHENTICATED"),
}


def expect(exc, fn, *args, **kwargs):
    """The call fails with the HTTP code and the `error.status` Google sends for `exc` (the
    REST transport maps by HTTP code only, so the status is read from the body)."""
    code, status = STATUS_OF[exc.__name__]
    try:
        fn(*args, **kwargs)
    except exceptions.GoogleAPICallError as e:
        body = e.response.json()["error"]
        assert (e.code, body["status"], body["code"]) == (code, status, code), (e, body)
        assert body["message"], body
        return e
    raise AssertionError(f"{fn.__name__} did not fail with {status}")


def main(endpoint, token):
    client = secretmanager.SecretManagerServiceClient(
        credentials=Credentials(token),
        transport="rest",
        client_options=ClientOptions(api_endpoint=endpoint),
    )
    project = f"projects/check-{uuid.uuid4().hex[:8]}"
    sid = "apps__db_5Fmain"
    name = f"{project}/secrets/{sid}"

    # CreateSecret: labels and replication kept; a second create is ALREADY_EXISTS; bad ids
    # and labels are INVALID_ARGUMENT; a global secret needs a replication.
    s = client.create_secret(
        parent=project,
        secret_id=sid,
        secret={
            "replication": {"automatic": {}},
            "labels": {"managed-by": "secretsync", "secretsync-owner": "o"},
        },
    )
    assert s.name == name and s.labels["managed-by"] == "secretsync", s
    assert s.etag, s
    expect(exceptions.AlreadyExists, client.create_secret, parent=project, secret_id=sid,
           secret={"replication": {"automatic": {}}})
    expect(exceptions.InvalidArgument, client.create_secret, parent=project, secret_id="a.b",
           secret={"replication": {"automatic": {}}})
    expect(exceptions.InvalidArgument, client.create_secret, parent=project, secret_id="x1",
           secret={"replication": {"automatic": {}}, "labels": {"Bad": "v"}})
    expect(exceptions.InvalidArgument, client.create_secret, parent=project, secret_id="x2",
           secret={})
    um = client.create_secret(parent=project, secret_id="um", secret={"replication": {
        "user_managed": {"replicas": [{"location": "europe-west1"}]}}})
    assert um.replication.user_managed.replicas[0].location == "europe-west1", um
    regional = client.create_secret(parent=f"{project}/locations/europe-west1", secret_id="r",
                                    secret={})
    assert regional.name == f"{project}/locations/europe-west1/secrets/r", regional

    # GetSecret; NOT_FOUND for a missing one.
    assert client.get_secret(name=name).labels["secretsync-owner"] == "o"
    expect(exceptions.NotFound, client.get_secret, name=f"{project}/secrets/missing")

    # AddSecretVersion, AccessSecretVersion (a number and `latest`).
    v1 = client.add_secret_version(parent=name, payload={"data": b'{"k":1}'})
    assert v1.name == f"{name}/versions/1" and v1.state == State.ENABLED, v1
    v2 = client.add_secret_version(parent=name, payload={"data": b'{"k":2}'})
    assert v2.name.endswith("/versions/2"), v2
    assert json.loads(client.access_secret_version(name=f"{name}/versions/1").payload.data) == {"k": 1}
    latest = client.access_secret_version(name=f"{name}/versions/latest")
    assert latest.name.endswith("/versions/2") and json.loads(latest.payload.data) == {"k": 2}
    expect(exceptions.NotFound, client.access_secret_version, name=f"{name}/versions/9")
    expect(exceptions.InvalidArgument, client.add_secret_version, parent=name,
           payload={"data": b"x" * 65537})

    # UpdateSecret of the labels (update mask), a stale etag is FAILED_PRECONDITION.
    s = client.get_secret(name=name)
    updated = client.update_secret(
        secret={"name": name, "labels": {"managed-by": "secretsync", "secretsync-version": "2"}},
        update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
    )
    assert dict(updated.labels) == {"managed-by": "secretsync", "secretsync-version": "2"}, updated
    assert updated.etag != s.etag
    expect(exceptions.FailedPrecondition, client.update_secret,
           secret={"name": name, "labels": {}, "etag": s.etag},
           update_mask=field_mask_pb2.FieldMask(paths=["labels"]))

    # ListSecrets pages (pageSize, pageToken) and the label filter.
    for i in range(3):
        client.create_secret(parent=project, secret_id=f"p{i}",
                             secret={"replication": {"automatic": {}}})
    names = [x.name for x in client.list_secrets(request={"parent": project, "page_size": 2})]
    # The regional secret is not among the global ones.
    assert len(names) == 5 and len(set(names)) == 5, names
    first = client.list_secrets(request={"parent": project, "page_size": 2})._response
    assert len(first.secrets) == 2 and first.next_page_token, first
    managed = [x.name for x in client.list_secrets(
        request={"parent": project, "filter": "labels.managed-by=secretsync"})]
    assert managed == [name], managed

    # ListSecretVersions (newest first), Disable / Enable / Destroy, disabled access refused.
    states = [(v.name.rsplit("/", 1)[1], v.state) for v in client.list_secret_versions(parent=name)]
    assert states == [("2", State.ENABLED), ("1", State.ENABLED)], states
    d = client.disable_secret_version(name=f"{name}/versions/2")
    assert d.state == State.DISABLED, d
    expect(exceptions.FailedPrecondition, client.access_secret_version, name=f"{name}/versions/latest")
    got = client.get_secret_version(name=f"{name}/versions/2")
    assert got.state == State.DISABLED, got
    e = client.enable_secret_version(name=f"{name}/versions/2")
    assert e.state == State.ENABLED, e
    x = client.destroy_secret_version(name=f"{name}/versions/1")
    assert x.state == State.DESTROYED, x
    expect(exceptions.FailedPrecondition, client.access_secret_version, name=f"{name}/versions/1")
    enabled = [v.name for v in client.list_secret_versions(
        request={"parent": name, "filter": "state:ENABLED"})]
    assert enabled == [f"{name}/versions/2"], enabled

    # DeleteSecret, then NOT_FOUND.
    client.delete_secret(name=name)
    expect(exceptions.NotFound, client.get_secret, name=name)

    # A wrong token is UNAUTHENTICATED (asked without the client, which would try to refresh
    # its credentials on a 401).
    r = requests.get(f"{endpoint}/v1/{project}/secrets/um", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED", r.text
    print("the fake answered every call as the official client expects")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
