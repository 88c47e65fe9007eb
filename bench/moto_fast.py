#!/usr/bin/env python3
"""moto's server with two of its Secrets Manager costs made proportional to the work asked, for
benchmarks at 100,000 secrets (`bench/run.sh` starts it for BENCH_DRIVER=memory; arguments as
`moto_server`'s).

moto 5 looks every secret up by scanning the whole region (`SecretsStore.__getitem__`,
`__contains__`, `get`) and answers each `ListSecrets` page by serializing every matching secret of
the region before slicing out the page. Both are quadratic over a run: a full sync of 100,000
secrets into one region would take hours, and one no-change listing (1,000 pages) about half an
hour, all of it moto's CPU. Patched here, with the same answers:
  * a lookup by a name (a key that is not an ARN) is a dict lookup: such a key can only match a
    secret by its name, and names are the store's keys; ARNs, full or partial, still scan;
  * `ListSecrets` serializes only the page's secrets, and the secrets matching a listing's
    filters are kept between its consecutive pages while the store's size is unchanged (a
    listing in progress sees the region as of its first page).
Nothing else of moto changes. Not used by the tests or by the comparisons with the baseline
script (bench/bench.py), which run on moto as shipped.
"""

import sys

from moto.secretsmanager import models as m

_orig_getitem = m.SecretsStore.__getitem__
_orig_contains = m.SecretsStore.__contains__
_orig_get = m.SecretsStore.get


# A key that is not an ARN can only match a secret by its name, and names are the store's keys:
# the scan's answer is the dict's (ARNs, full or partial, still scan).
def _getitem(self, key):
    if not key.startswith("arn:"):
        return dict.__getitem__(self, key)
    return _orig_getitem(self, key)


def _contains(self, key):
    if not key.startswith("arn:"):
        return dict.__contains__(self, key)
    return _orig_contains(self, key)


def _get(self, key):
    if not key.startswith("arn:"):
        return dict.get(self, key)
    return _orig_get(self, key)


m.SecretsStore.__getitem__ = _getitem
m.SecretsStore.__contains__ = _contains
m.SecretsStore.get = _get

_listings = {}


def _list_secrets(self, filters, max_results=m.MAX_RESULTS_DEFAULT, next_token=None,
                  include_planned_deletion=False):
    key = (id(self), repr(filters), include_planned_deletion)
    start = int(next_token or 0)
    cached = _listings.get(key)
    if start == 0 or cached is None or cached[0] != len(self.secrets) or cached[1] != start:
        matched = []
        for secret in self.secrets.values():
            if getattr(secret, "deleted_date", None) and not include_planned_deletion:
                continue
            if m._matches(secret, filters):
                matched.append(secret)
    else:
        matched = cached[2]
    end = start + int(max_results or m.MAX_RESULTS_DEFAULT)
    page = [s.to_dict() for s in matched[start:end]]
    token = str(end) if end < len(matched) else None
    if token:
        _listings[key] = (len(self.secrets), end, matched)
    else:
        _listings.pop(key, None)
    return page, token


m.SecretsManagerBackend.list_secrets = _list_secrets

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
