#!/usr/bin/env python3
"""Check what schemas cannot: that the rendered manifests keep their promises.

Schema validation (kubernetes-validate) says a manifest is well-formed. This
script reads the *rendered* output of each overlay and checks the properties
the docs promise, across files that could otherwise drift apart:

  * every container is locked down (non-root, read-only root, no privilege
    escalation, all capabilities dropped, seccomp RuntimeDefault);
  * sluice listens beyond loopback, and its probes, ports and Prometheus
    annotations point at the listeners it really has;
  * graceful shutdown adds up: preStop + --shutdown-grace < the grace period,
    and any origin container in the Pod outlives sluice's drain;
  * the memory limit follows the MEMORY_LIMIT_ARITHMETIC comment, and the
    comment follows the budget and connection limit the pod really gets;
  * Services expose only the client port (the admin one only headless);
  * a ServiceMonitor selects a Service that has the port it scrapes;
  * the signing key and salt, where set, come from a Secret;
  * the Dockerfile agrees with the manifests (ports, user, health URL).

    check_invariants.py --dockerfile deploy/Dockerfile NAME=rendered.yaml ...

Exit status 0 when everything holds, 1 with one line per broken promise.
"""
import re
import sys

import yaml

# The per-connection and baseline terms of the memory arithmetic. They are
# measured by deploy/tools/connection_memory.py (see docs/deploy.md);
# change them here and in the MEMORY_LIMIT_ARITHMETIC comments together.
STREAMING_KIB_PER_CONNECTION = 384
BASELINE_MIB = 64

UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30,
         "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
         "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def quantity_bytes(q):
    m = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", str(q).strip())
    if not m or m.group(2) not in UNITS:
        raise ValueError(f"cannot read size {q!r}")
    return int(m.group(1)) * UNITS[m.group(2)]


def duration_seconds(d):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|min|h)?", str(d).strip())
    if not m:
        raise ValueError(f"cannot read duration {d!r}")
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


class Report:
    def __init__(self):
        self.problems = []

    def check(self, ok, where, what):
        if not ok:
            self.problems.append(f"{where}: {what}")
        return ok


def env_of(container, configmaps):
    """The container's environment as the kubelet would build it
    (envFrom ConfigMaps first, then env; secret refs kept as markers)."""
    env = {}
    for src in container.get("envFrom", []):
        ref = src.get("configMapRef")
        if ref and ref["name"] in configmaps:
            env.update(configmaps[ref["name"]])
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "valueFrom" in e:
            env[e["name"]] = ("valueFrom", e["valueFrom"])
    return env


def port_of(addr):
    return int(str(addr).rsplit(":", 1)[1])


def prestop_seconds(container):
    pre = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre:
        return pre["sleep"]["seconds"]
    return 0


def check_container_locked_down(r, where, pod_sc, c):
    sc = c.get("securityContext", {})
    r.check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where, "runAsNonRoot is not true")
    r.check(sc.get("readOnlyRootFilesystem") is True, where, "readOnlyRootFilesystem is not true")
    r.check(sc.get("allowPrivilegeEscalation") is False, where, "allowPrivilegeEscalation is not false")
    r.check(sc.get("capabilities", {}).get("drop") == ["ALL"], where, "capabilities.drop is not [ALL]")
    r.check(not sc.get("capabilities", {}).get("add"), where, "adds capabilities")
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
    r.check(seccomp.get("type") == "RuntimeDefault", where, "seccomp is not RuntimeDefault")
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    r.check(isinstance(uid, int) and uid > 0, where, "no numeric non-root runAsUser")


def check_memory(r, where, c, env):
    budget = quantity_bytes(env.get("SLUICE_MEMORY_BUDGET", "256MiB"))
    conns = int(env.get("SLUICE_MAX_CONNECTIONS", "10000"))
    limits = c.get("resources", {}).get("limits", {})
    requests = c.get("resources", {}).get("requests", {})
    if not r.check("memory" in limits, where, "no memory limit"):
        return
    limit = quantity_bytes(limits["memory"])
    need = budget + conns * STREAMING_KIB_PER_CONNECTION * 1024 + BASELINE_MIB * (1 << 20)
    r.check(limit >= need, where,
            f"memory limit {limits['memory']} < budget {budget >> 20} MiB + {conns} connections x "
            f"{STREAMING_KIB_PER_CONNECTION} KiB + {BASELINE_MIB} MiB = {need >> 20} MiB")
    r.check(requests.get("memory") == limits["memory"], where, "memory request differs from the limit")
    r.check("cpu" in requests, where, "no CPU request (the HPA needs one)")


def check_memory_comment(r, path, text, env_budget_mib, limit_mib, connections):
    """The MEMORY_LIMIT_ARITHMETIC comment in a source file must add up and
    name the numbers the rendered pod really has."""
    block = text.split("MEMORY_LIMIT_ARITHMETIC", 1)
    if not r.check(len(block) == 2, path, "no MEMORY_LIMIT_ARITHMETIC comment"):
        return
    lines = []
    for line in block[1].splitlines()[1:]:
        s = line.strip()
        if not s.startswith("#"):
            break
        lines.append(s)
    nums = [int(m.group(1)) for s in lines for m in [re.search(r"(\d+) MiB\s*$", s)] if m]
    if not r.check(len(nums) >= 3, path, f"cannot read the arithmetic: {lines}"):
        return
    *terms, total = nums
    r.check(sum(terms) == total, path, f"arithmetic does not add up: {terms} -> {total}")
    r.check(terms[0] == env_budget_mib, path, f"comment says budget {terms[0]} MiB, pod has {env_budget_mib} MiB")
    r.check(total == limit_mib, path, f"comment says limit {total} MiB, pod has {limit_mib} MiB")
    r.check(f"{connections} connections" in "\n".join(lines), path,
            f"comment does not use the pod's {connections} connections")
    r.check(f"x {STREAMING_KIB_PER_CONNECTION} KiB" in "\n".join(lines), path,
            f"comment does not use {STREAMING_KIB_PER_CONNECTION} KiB per connection")


def check_rendering(r, name, docs, memory_comment_files):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    configmaps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in by_kind.get("ConfigMap", [])}
    deployments = by_kind.get("Deployment", [])
    r.check(len(deployments) == 1, name, f"expected one Deployment, found {len(deployments)}")
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        r.check(kind in by_kind, name, f"no {kind}")
    if not deployments:
        return
    dep = deployments[0]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    pod_sc = spec.get("securityContext", {})
    pod_labels = pod["metadata"].get("labels", {})
    r.check(all(pod_labels.get(k) == v for k, v in dep["spec"]["selector"]["matchLabels"].items()),
            name, "Deployment selector does not match its pod labels")
    containers = {c["name"]: c for c in spec["containers"]}
    if not r.check("sluice" in containers, name, "no container named sluice"):
        return
    sluice = containers["sluice"]
    env = env_of(sluice, configmaps)
    for cname, c in containers.items():
        check_container_locked_down(r, f"{name}/{cname}", pod_sc, c)
        r.check("memory" in c.get("resources", {}).get("limits", {}), f"{name}/{cname}", "no memory limit")

    w = f"{name}/sluice"
    ports = {p["name"]: p["containerPort"] for p in sluice.get("ports", [])}
    for var, pname in (("SLUICE_LISTEN", "http"), ("SLUICE_ADMIN_LISTEN", "admin")):
        addr = env.get(var, "")
        r.check(isinstance(addr, str) and not addr.startswith(("127.", "[::1]", "localhost")) and addr,
                w, f"{var}={addr!r} is not reachable from outside the container")
        if isinstance(addr, str) and addr:
            r.check(ports.get(pname) == port_of(addr), w, f"port {pname} is not the port of {var}={addr}")
    live = sluice.get("livenessProbe", {}).get("httpGet", {})
    ready = sluice.get("readinessProbe", {}).get("httpGet", {})
    r.check(live.get("path") == "/healthz" and live.get("port") in ports, w, f"liveness probe {live}")
    r.check(ready.get("path") == "/readyz" and ready.get("port") in ports, w, f"readiness probe {ready}")
    if "SLUICE_TLS_CERT" in env or "SLUICE_TLS_KEY" in env:
        # TLS: the pair comes from a Secret mounted read-only (cert-manager
        # rotates it in place), and the client-port probe speaks HTTPS.
        mounts = sluice.get("volumeMounts", [])
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for var in ("SLUICE_TLS_CERT", "SLUICE_TLS_KEY"):
            path = env.get(var, "")
            mount = next((m for m in mounts
                          if isinstance(path, str) and path.startswith(m["mountPath"].rstrip("/") + "/")), None)
            r.check(mount is not None and mount.get("readOnly") is True
                    and "secret" in volumes.get(mount["name"], {}),
                    w, f"{var}={path!r} is not in a read-only Secret volume")
        r.check(ready.get("scheme") == "HTTPS", w, "the readiness probe must use HTTPS on a TLS client port")
    ann = pod["metadata"].get("annotations", {})
    r.check(ann.get("prometheus.io/scrape") == "true", w, "no prometheus.io/scrape annotation")
    r.check(ann.get("prometheus.io/path") == "/metrics", w, "prometheus.io/path is not /metrics")
    r.check(ann.get("prometheus.io/port") == str(ports.get("admin")), w,
            "prometheus.io/port is not the admin port")

    # Graceful shutdown.
    grace = spec.get("terminationGracePeriodSeconds", 30)
    drain = prestop_seconds(sluice) + duration_seconds(env.get("SLUICE_SHUTDOWN_GRACE", "30s"))
    r.check(prestop_seconds(sluice) > 0, w, "no preStop delay")
    r.check(grace > drain, w, f"terminationGracePeriodSeconds {grace} <= preStop + shutdown grace = {drain:g}")
    for cname, c in containers.items():
        if cname != "sluice":
            r.check(drain <= prestop_seconds(c) < grace, f"{name}/{cname}",
                    f"preStop {prestop_seconds(c)} s must cover sluice's drain ({drain:g} s) "
                    f"and end before the grace period ({grace} s)")

    check_memory(r, w, sluice, env)
    for path in memory_comment_files:
        with open(path) as f:
            text = f.read()
        limit = sluice.get("resources", {}).get("limits", {}).get("memory", "0")
        check_memory_comment(r, path, text,
                             quantity_bytes(env.get("SLUICE_MEMORY_BUDGET", "256MiB")) >> 20,
                             quantity_bytes(limit) >> 20,
                             int(env.get("SLUICE_MAX_CONNECTIONS", "10000")))

    for var in ("SLUICE_KEY", "SLUICE_SALT"):
        if var in env:
            v = env[var]
            r.check(isinstance(v, tuple) and "secretKeyRef" in v[1], w, f"{var} does not come from a Secret")

    # Services: the client port only, unless headless for monitoring.
    services = by_kind.get("Service", [])
    for svc in services:
        sel = svc["spec"].get("selector", {})
        r.check(sel and all(pod_labels.get(k) == v for k, v in sel.items()),
                f"{name}/service/{svc['metadata']['name']}", "selector does not match the pods")
        targets = {p.get("targetPort") for p in svc["spec"]["ports"]}
        if svc["spec"].get("clusterIP") != "None":
            r.check(targets == {"http"}, f"{name}/service/{svc['metadata']['name']}",
                    f"exposes {sorted(map(str, targets))}, not only sluice's client port")
        for t in targets:
            r.check(t in ports, f"{name}/service/{svc['metadata']['name']}", f"targetPort {t} is not a sluice port")

    for sm in by_kind.get("ServiceMonitor", []):
        want = sm["spec"]["selector"]["matchLabels"]
        matched = [s for s in services
                   if all(s["metadata"].get("labels", {}).get(k) == v for k, v in want.items())]
        where = f"{name}/servicemonitor/{sm['metadata']['name']}"
        if r.check(len(matched) == 1, where, f"selects {len(matched)} Services, not one"):
            names = {p["name"] for p in matched[0]["spec"]["ports"]}
            for ep in sm["spec"]["endpoints"]:
                r.check(ep["port"] in names, where, f"endpoint port {ep['port']} not on the Service")
                r.check(ep.get("path") == "/metrics", where, "endpoint path is not /metrics")

    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        r.check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"],
                f"{name}/hpa", "does not target the Deployment")
        r.check(hpa["spec"].get("minReplicas", 1) >= 2, f"{name}/hpa",
                "minReplicas < 2: the PodDisruptionBudget would block every drain")
    return sluice, pod_sc


def check_dockerfile(r, path, sluice, pod_sc):
    with open(path) as f:
        text = f.read()
    exposed = set()
    for m in re.finditer(r"^EXPOSE\s+(.+)$", text, re.M):
        exposed |= {int(p.split("/")[0]) for p in m.group(1).split()}
    ports = {p["containerPort"] for p in sluice.get("ports", [])}
    r.check(exposed == ports, path, f"EXPOSE {sorted(exposed)} but the pod has ports {sorted(ports)}")
    user = re.findall(r"^USER\s+(\S+)$", text, re.M)
    r.check(user and user[-1].split(":")[0] == str(pod_sc.get("runAsUser")), path,
            f"USER {user} differs from runAsUser {pod_sc.get('runAsUser')}")
    listen = re.search(r"SLUICE_LISTEN=(\S+)", text)
    health = re.search(r'HEALTHCHECK[^\n]*(?:\\\n[^\n]*)*"--url",\s*"http://127\.0\.0\.1:(\d+)/readyz"', text)
    r.check(listen and health and port_of(listen.group(1)) == int(health.group(1)), path,
            "HEALTHCHECK does not probe /readyz on the SLUICE_LISTEN port")


def main(argv):
    dockerfile = None
    comment_files = {}
    renderings = []
    args = iter(argv)
    for a in args:
        if a == "--dockerfile":
            dockerfile = next(args)
        elif a == "--memory-comment":
            # NAME=FILE: FILE holds the arithmetic comment for rendering NAME
            n, f = next(args).split("=", 1)
            comment_files.setdefault(n, []).append(f)
        else:
            renderings.append(a.split("=", 1))
    r = Report()
    last = None
    for name, path in renderings:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if r.check(docs, name, "rendered nothing"):
            last = check_rendering(r, name, docs, comment_files.get(name, [])) or last
    if dockerfile and last:
        check_dockerfile(r, dockerfile, *last)
    for p in r.problems:
        print(f"FAIL {p}")
    print(f"invariants: {len(renderings)} renderings, {len(r.problems)} problems")
    return 1 if r.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
