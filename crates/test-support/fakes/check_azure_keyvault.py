"""Checks the Key Vault contract fake (azure_keyvault.py) with Microsoft's own Python client,
`azure-keyvault-secrets`: every call SecretSync's `azure_keyvault` target makes, and the
behaviour it relies on, answered as the real service answers them.

    python check_azure_keyvault.py VAULT_URL TOKEN CA_PEM

Exits 0 when every check passed; prints each check as it goes. Run by the Rust test
`crates/engine/tests/fake_azure_contract.rs`.
"""

import sys
import time
import uuid

from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import SecretClient


class StaticToken:
    def __init__(self, token):
        self.token = token
        self.scopes = []

    def get_token(self, *scopes, **kwargs):
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


def check(what, cond):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def main(url, token, ca):
    cred = StaticToken(token)
    c = SecretClient(url, credential=cred, verify_challenge_resource=False, connection_verify=ca)
    p = "chk" + uuid.uuid4().hex[:8]

    # Challenge authentication: the client asked for the resource the 401 named.
    s = c.set_secret(f"{p}-a", '{"k":"v1"}', content_type="application/json",
                     tags={"managed-by": "secretsync", "secretsync:owner": "o"})
    check("challenge: the token was asked for https://vault.azure.net/.default",
          any("https://vault.azure.net/.default" in sc for sc in cred.scopes))
    check("set: value, content type, tags, a 32-hex version",
          s.value == '{"k":"v1"}' and s.properties.content_type == "application/json"
          and s.properties.tags == {"managed-by": "secretsync", "secretsync:owner": "o"}
          and len(s.properties.version) == 32)
    v1 = s.properties.version
    s2 = c.set_secret(f"{p}-a", '{"k":"v2"}', content_type="application/json", tags={"t": "2"})
    check("set again: a new version with only the tags it was given",
          s2.properties.version != v1 and s2.properties.tags == {"t": "2"})
    check("get latest", c.get_secret(f"{p}-a").value == '{"k":"v2"}')
    check("get by version", c.get_secret(f"{p}-a", v1).value == '{"k":"v1"}')
    check("names are case-insensitive", c.get_secret(f"{p}-A".upper()).value == '{"k":"v2"}')
    u = c.update_secret_properties(f"{p}-a", tags={"t": "3"})
    check("update properties: tags of the latest version",
          u.tags == {"t": "3"} and c.get_secret(f"{p}-a").properties.tags == {"t": "3"})
    versions = list(c.list_properties_of_secret_versions(f"{p}-a"))
    check("list versions", sorted(v.version for v in versions) == sorted([v1, s2.properties.version]))

    # Paging: more than one page of 25.
    for i in range(30):
        c.set_secret(f"{p}-n{i}", "{}", tags={"i": str(i)})
    listed = [x for x in c.list_properties_of_secrets() if x.name.startswith(p)]
    check("list secrets follows nextLink past 25 (31 listed, with tags)",
          len(listed) == 31 and all(x.tags for x in listed))
    check("listed items carry no version and no value",
          all(x.version is None for x in listed))

    # Soft delete, the 409 on setting a deleted name, recover, purge.
    poller = c.begin_delete_secret(f"{p}-a")
    d = poller.result()
    poller.wait()
    check("delete: the deleted secret, recoverable", d.recovery_id is not None and d.name == f"{p}-a")
    check("deleted secret readable", c.get_deleted_secret(f"{p}-a").properties.tags == {"t": "3"})
    check("listed among the deleted", any(x.name == f"{p}-a" for x in c.list_deleted_secrets()))
    check("not among the secrets", all(x.name != f"{p}-a" for x in c.list_properties_of_secrets()))
    try:
        c.get_secret(f"{p}-a")
        check("get of a deleted secret is 404", False)
    except ResourceNotFoundError:
        check("get of a deleted secret is 404", True)
    try:
        c.set_secret(f"{p}-a", "{}")
        check("set of a soft-deleted name is 409", False)
    except ResourceExistsError as e:
        check("set of a soft-deleted name is 409 'deleted but recoverable'",
              e.status_code == 409 and "deleted but recoverable" in str(e))
    r = c.begin_recover_deleted_secret(f"{p}-a")
    r.wait()
    check("recover: readable again, same value and tags",
          c.get_secret(f"{p}-a").value == '{"k":"v2"}' and c.get_secret(f"{p}-a").properties.tags == {"t": "3"})
    c.begin_delete_secret(f"{p}-a").wait()
    c.purge_deleted_secret(f"{p}-a")
    try:
        c.get_deleted_secret(f"{p}-a")
        check("purged: gone", False)
    except ResourceNotFoundError:
        check("purged: gone from the deleted secrets", True)
    s3 = c.set_secret(f"{p}-a", '{"k":"new"}')
    check("a purged name can be set again", s3.value == '{"k":"new"}')

    # The deleted listing pages too (the Rust target lists it every plan).
    pollers = [c.begin_delete_secret(f"{p}-n{i}") for i in range(30)]
    for po in pollers:
        po.wait()
    gone = [x for x in c.list_deleted_secrets() if x.name.startswith(f"{p}-n")]
    check("list deleted secrets follows nextLink past 25 (30 listed, with tags)",
          len(gone) == 30 and all(x.properties.tags for x in gone))

    # Limits and validation.
    try:
        c.set_secret(f"{p}-t", "{}", tags={f"k{i}": "v" for i in range(16)})
        check("16 tags refused", False)
    except HttpResponseError as e:
        check("16 tags refused with 400 BadParameter", e.status_code == 400 and "BadParameter" in str(e))
    check("15 tags accepted", len(c.set_secret(f"{p}-t", "{}", tags={f"k{i}": "v" for i in range(15)}).properties.tags) == 15)
    try:
        c.set_secret(f"{p}_bad", "{}")
        check("invalid name refused", False)
    except HttpResponseError as e:
        check("invalid name refused with 400", e.status_code == 400)
    try:
        c.set_secret(f"{p}-big", "x" * (25 * 1024 + 1))
        check("value over 25 KiB refused", False)
    except HttpResponseError as e:
        check("value over 25 KiB refused with 400", e.status_code == 400)

    # A wrong token is refused.
    bad = SecretClient(url, credential=StaticToken("wrong"), verify_challenge_resource=False,
                       connection_verify=ca)
    try:
        bad.get_secret(f"{p}-t")
        check("a wrong token is refused", False)
    except ClientAuthenticationError as e:
        check("a wrong token is refused with 401", e.status_code == 401)
    print("all checks passed")


if __name__ == "__main__":
    main(*sys.argv[1:4])
