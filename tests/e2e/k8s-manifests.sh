#!/bin/sh
# The Kubernetes manifests in deploy/kubernetes/: every document parses and is a kind this
# deployment means, and the socket, programs, library, options, environment variables and
# configuration they name are the ones the code has, so that the two cannot drift apart.
set -eu
. "$(dirname "$0")/lib.sh"
python3 -c 'import yaml' 2>/dev/null || mv_skip "python3-yaml is not installed (apt-get install python3-yaml)"
for p in "$MV_TOP_BUILDDIR/cli/memvirt" "$MV_TOP_BUILDDIR/daemon/memvirtd"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
mv_tmpdir

python3 - "$MV_TOP_SRCDIR" "$MV_TOP_BUILDDIR" "$MV_TMP" <<'PY'
import glob, os, re, shlex, subprocess, sys
import yaml

src, build, tmp = sys.argv[1:4]
failures = []


def fail(msg):
    failures.append(msg)


def read(path):
    with open(os.path.join(src, path)) as f:
        return f.read()


kinds = {("v1", "Namespace"), ("v1", "ConfigMap"), ("apps/v1", "DaemonSet"), ("v1", "Pod")}
docs = {}
files = sorted(glob.glob(os.path.join(src, "deploy/kubernetes/*.yaml")))
if len(files) < 2:
    fail("expected the DaemonSet and the example pod in deploy/kubernetes, found %s" % files)
for path in files:
    name = os.path.basename(path)
    with open(path) as f:
        try:
            loaded = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            fail("%s does not parse: %s" % (name, e))
            continue
    for d in loaded:
        key = (d.get("apiVersion"), d.get("kind"))
        if key not in kinds:
            fail("%s: apiVersion %s kind %s is not one this deployment uses" % (name, key[0], key[1]))
        if not d.get("metadata", {}).get("name"):
            fail("%s: a %s without metadata.name" % (name, key[1]))
        docs.setdefault(key[1], []).append(d)
for k in ("Namespace", "ConfigMap", "DaemonSet", "Pod"):
    if len(docs.get(k, [])) != 1:
        fail("expected one %s among the manifests, found %d" % (k, len(docs.get(k, []))))
if failures:
    sys.exit("FAIL: " + "\nFAIL: ".join(failures))
ns, cm, ds, pod = (docs[k][0] for k in ("Namespace", "ConfigMap", "DaemonSet", "Pod"))

# What the code says.
m = re.search(r'^#define MV_SYSTEM_SOCKET "([^"]+)"$', read("protocol/paths.h"), re.M)
socket_default = m.group(1) if m else fail("no system socket path (MV_SYSTEM_SOCKET) in protocol/paths.h")
listen = re.search(r"^ListenStream=(\S+)$", read("daemon/memvirtd.socket"), re.M)
if listen is None or listen.group(1) != socket_default:
    fail("memvirtd.socket listens on %s, protocol/paths.h says %s" % (listen and listen.group(1), socket_default))
configure = read("configure.ac")
package = re.search(r"^AC_INIT\(\[([^\]]+)\]", configure, re.M).group(1)
makefile = read("Makefile.am")
for line in ("sbin_PROGRAMS = daemon/memvirtd", "bin_PROGRAMS = cli/memvirt",
             "pkglib_LTLIBRARIES = interpose/libmemvirt.la"):
    if line not in makefile:
        fail("Makefile.am no longer says '%s'" % line)
# The image is memvirt installed with --prefix=/usr.
installed = {"memvirtd": "/usr/sbin/memvirtd", "memvirt": "/usr/bin/memvirt",
             "lib": "/usr/lib/%s/libmemvirt.so" % package}
code = ""
for d in ("interpose", "protocol", "cli", "daemon"):
    for f in sorted(glob.glob(os.path.join(src, d, "*.c"))):
        with open(f) as fh:
            code += fh.read()


def run(*args):
    return subprocess.run(args, capture_output=True, text=True)


def long_options(program, *args):
    p = run(os.path.join(build, program), *args, "--help")
    return set(re.findall(r"(--[a-z][a-z-]*)", p.stdout + p.stderr))


memvirtd_options = long_options("daemon/memvirtd")
status_options = long_options("cli/memvirt", "daemon", "status")
if "--socket" not in status_options:
    fail("memvirt daemon status --help names no --socket")


def container_volume(spec, container, mount_path):
    """The volume mounted at mount_path in container, as its spec entry."""
    for vm in container.get("volumeMounts", []):
        if vm["mountPath"] == mount_path:
            for v in spec.get("volumes", []):
                if v["name"] == vm["name"]:
                    return v
            fail("%s mounts volume %s, which the pod does not define" % (container["name"], vm["name"]))
    return None


# The DaemonSet.
spec = ds["spec"]["template"]["spec"]
if ds["spec"]["selector"]["matchLabels"].items() - ds["spec"]["template"]["metadata"]["labels"].items():
    fail("the DaemonSet's selector does not match its pod template's labels")
if ds["metadata"]["namespace"] != ns["metadata"]["name"] or cm["metadata"]["namespace"] != ns["metadata"]["name"]:
    fail("the DaemonSet and its ConfigMap are not in namespace %s" % ns["metadata"]["name"])
(daemon,) = spec["containers"]
words = shlex.split(daemon["command"][-1]) if daemon["command"][0] == "/bin/sh" else daemon["command"]
words = words[words.index("exec") + 1:] if "exec" in words else words
if words[0] != installed["memvirtd"]:
    fail("the DaemonSet runs %s, not %s" % (words[0], installed["memvirtd"]))
for w in words[1:]:
    if w.startswith("--") and w not in memvirtd_options:
        fail("memvirtd has no option %s (memvirtd --help)" % w)
sock = words[words.index("--socket") + 1]
if sock != socket_default:
    fail("the DaemonSet's socket %s is not the shared daemon's %s" % (sock, socket_default))
vol = container_volume(spec, daemon, os.path.dirname(sock))
if vol is None or vol.get("hostPath", {}).get("path") != os.path.dirname(sock):
    fail("the socket's directory %s is not the node's, through a hostPath volume" % os.path.dirname(sock))
probe = daemon["readinessProbe"]["exec"]["command"]
if probe[0] != installed["memvirt"] or probe[1:3] != ["daemon", "status"] or probe[probe.index("--socket") + 1] != sock:
    fail("the readiness probe is not '%s daemon status --socket %s': %s" % (installed["memvirt"], sock, probe))
conf = words[words.index("--config") + 1]
vol = container_volume(spec, daemon, os.path.dirname(conf))
if vol is None or vol.get("configMap", {}).get("name") != cm["metadata"]["name"]:
    fail("--config %s is not in the ConfigMap %s's volume" % (conf, cm["metadata"]["name"]))
elif os.path.basename(conf) not in cm["data"]:
    fail("the ConfigMap has no key %s for --config %s" % (os.path.basename(conf), conf))
else:
    # The configuration is checked by the daemon's own loader.
    cfg = os.path.join(tmp, os.path.basename(conf))
    with open(cfg, "w") as f:
        f.write(cm["data"][os.path.basename(conf)])
    p = run(os.path.join(build, "cli/memvirt"), "config", "check", cfg)
    if p.returncode != 0 or not p.stdout.startswith(cfg + ": ok"):
        fail("memvirt config check refuses the ConfigMap's %s: %s" % (os.path.basename(conf), p.stdout + p.stderr))

# The example pod.
spec = pod["spec"]
(init,) = spec["initContainers"]
(job,) = spec["containers"]
if init["command"][:2] != ["cp", installed["lib"]]:
    fail("the init container does not copy %s: %s" % (installed["lib"], init["command"]))
lib = init["command"][2]
env = {e["name"]: e.get("value") for e in job.get("env", [])}
if env.get("LD_PRELOAD") != lib:
    fail("the job preloads %s, not the copied %s" % (env.get("LD_PRELOAD"), lib))
init_vol = container_volume(spec, init, os.path.dirname(lib))
job_vol = container_volume(spec, job, os.path.dirname(lib))
if init_vol is None or init_vol is not job_vol:
    fail("the init container and the job do not share the library's directory %s" % os.path.dirname(lib))
if env.get("MEMVIRT_SOCKET") != sock:
    fail("the job's MEMVIRT_SOCKET is %s, not the daemon's %s" % (env.get("MEMVIRT_SOCKET"), sock))
vol = container_volume(spec, job, os.path.dirname(sock))
if vol is None or vol.get("hostPath", {}).get("path") != os.path.dirname(sock):
    fail("the job does not mount the node's %s" % os.path.dirname(sock))
for name in env:
    if name.startswith("MEMVIRT_") and 'getenv("%s")' % name not in code:
        fail("the job sets %s, which no code reads" % name)
if "nvidia.com/gpu" not in job["resources"]["limits"]:
    fail("the job asks for no nvidia.com/gpu")

# The README names both manifests.
readme = read("deploy/kubernetes/README.md")
for path in files:
    if os.path.basename(path) not in readme:
        fail("deploy/kubernetes/README.md does not mention %s" % os.path.basename(path))

if failures:
    sys.exit("FAIL: " + "\nFAIL: ".join(failures))
print("ok: %d manifests, socket %s, library %s, %d variables" % (len(files), sock, installed["lib"], len(env)))
PY
