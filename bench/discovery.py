"""Discovery benchmark driver (run by bench/discovery.sh, which starts moto): builds an
organization of N accounts — 10 OUs under the root, each with 4 child OUs, accounts spread
over the 40 leaf OUs, every account tagged `Environment` (prod-*/staging) and `Team` — then
times `secretsync discover --output json` cold (`--refresh-discovery`) and cached, three times
each, with a block that reads tags (a tag filter and an OU filter), and records the calls."""

import argparse, json, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "secretsync")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "discovery.md"))
    a = ap.parse_args()
    n = int(os.environ.get("BENCH_ACCOUNTS", "1000"))
    org = boto3.client("organizations", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    t0 = time.time()
    tops = [org.create_organizational_unit(ParentId=root, Name=f"top{i}")["OrganizationalUnit"]["Id"] for i in range(10)]
    leaves = [org.create_organizational_unit(ParentId=t, Name=f"leaf{j}")["OrganizationalUnit"]["Id"] for t in tops for j in range(4)]

    def make(i):
        env = ["prod-eu", "prod-us", "staging"][i % 3]
        acct = org.create_account(AccountName=f"acct-{i:04d}", Email=f"a{i}@example.com",
                                  Tags=[{"Key": "Environment", "Value": env}, {"Key": "Team", "Value": f"t{i % 7}"}])
        aid = acct["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=aid, SourceParentId=root, DestinationParentId=leaves[i % len(leaves)])
        return aid

    with ThreadPoolExecutor(8) as ex:
        ids = list(ex.map(make, range(n)))
    log(f"built an organization of {len(ids)} accounts in 50 OUs in {time.time() - t0:.1f}s")
    cfg = os.path.join(a.work, "discovery.yaml")
    with open(cfg, "w") as f:
        f.write(f"""vault_sources:
  - mount: secret/base/
    name: base
discovery:
  type: aws_organizations
  filters:
    - tag: Environment
      values: ["prod*"]
    - ou: {tops[0]}
  match: any
  target_template:
    name: "{{account_name}}-{{region}}"
    regions: [us-east-1]
    imports: [base]
""")

    def run(args):
        t = time.time()
        p = subprocess.run([BIN, "--log-level", "warn", "discover", "--config", cfg, "--output", "json"] + args,
                           capture_output=True, text=True)
        wall = time.time() - t
        if p.returncode != 0:
            raise RuntimeError(p.stderr)
        doc = json.loads(p.stdout)
        b = doc["blocks"][0]
        return wall, b["calls"], b["listed"], b["selected"], len(doc["targets"])

    rows = []
    for kind, args in [("cold (--refresh-discovery)", ["--refresh-discovery"]), ("cached", [])]:
        for i in range(3):
            wall, calls, listed, selected, targets = run(args)
            log(f"{kind} {i + 1}: {wall:.2f}s, {calls} calls, {listed} listed, {selected} selected, {targets} targets")
            rows.append((kind, wall, calls, listed, selected, targets))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    lines = ["# Discovery benchmark", "",
             f"- {n} accounts in 50 OUs (10 under the root, 4 below each; accounts in the 40 leaves), every account tagged.",
             "- One `aws_organizations` block: `match: any` of a tag filter (`Environment: prod*`) and an OU filter, so tags are read.",
             f"- Machine: {os.cpu_count()} CPUs; moto {__import__('moto').__version__}.", "",
             "| run | wall s (median of 3) | Organizations calls | accounts listed | selected | targets |",
             "|---|---:|---:|---:|---:|---:|"]
    for kind in ["cold (--refresh-discovery)", "cached"]:
        rs = [r for r in rows if r[0] == kind]
        lines.append(f"| {kind} | {med([r[1] for r in rs]):.2f} | {rs[0][2]} | {rs[0][3]} | {rs[0][4]} | {rs[0][5]} |")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
