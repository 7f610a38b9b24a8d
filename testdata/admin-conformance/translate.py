#!/usr/bin/env python3
"""Translate the upstream network-policy-api conformance Go tests into the
declarative case files of testdata/admin-conformance (schema: README.md there).

Usage: translate.py UPSTREAM_CONFORMANCE_DIR VERSION_DIR REF COMMIT

UPSTREAM_CONFORMANCE_DIR is the `conformance/` directory of an upstream checkout
at REF (commit COMMIT); VERSION_DIR is testdata/admin-conformance/<v1alpha1|v1alpha2>,
whose base/ must already hold a verbatim copy of the upstream conformance/base/.

The translation is strict: every statement of every test body must match one of
the patterns below, otherwise the script stops with the unrecognised text, so a
new upstream construct cannot be dropped silently.
"""

import json
import os
import re
import sys

import yaml

UP, OUT, REF, COMMIT = sys.argv[1:5]
HOST_PORT_START = 34345  # suite default HostNetworkPortRangeStart (utils/suite/suite.go)

S = r"\s*"
STR = r'"([^"]*)"'


def strip_comments(text):
    # Replace // comments (to end of line) by spaces, keeping offsets. Test bodies
    # contain no string literal holding "//".
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))
    text = re.sub(r"/\*.*?\*/", blank, text, flags=re.S)
    return re.sub(r"//[^\n]*", blank, text)


PATTERNS = [
    # --- structure
    ("run", r"t\.Run\(" + STR + r", func\(t \*testing\.T\) \{"),
    ("run_end", r"^\t\t\}\)$"),
    ("noop", r"ctx, cancel := context\.WithTimeout\(context\.Background\(\), s\.TimeoutConfig\.GetTimeout\)\s*defer cancel\(\)"),
    # --- pod lookups
    ("getpod", r"(\w+) :?= kubernetes\.GetPod\(t, s\.Client, " + STR + ", " + STR + r", s\.TimeoutConfig\.GetTimeout\)"),
    ("getpod1", r"(\w+) :?= &v1\.Pod\{\}\s*err :?= s\.Client\.Get\(ctx, client\.ObjectKey\{\s*Namespace:\s*" + STR
     + r",\s*Name:\s*" + STR + r",\s*\}, (\w+)\)\s*require\.NoErrorf\(t, err, " + STR + r"\)"),
    ("getpod1b", r"err :?= s\.Client\.Get\(ctx, client\.ObjectKey\{\s*Namespace:\s*" + STR
     + r",\s*Name:\s*" + STR + r",\s*\}, (\w+)\)\s*require\.NoErrorf\(t, err, " + STR + r"\)"),
    # --- policy lookups
    ("getpol", r"(\w+) :?= kubernetes\.Get(ClusterNetworkPolicy)\(t, s\.Client, " + STR + r", s\.TimeoutConfig\.GetTimeout\)"),
    ("getpol1", r"(\w+) :?= &v1alpha1\.(AdminNetworkPolicy|BaselineAdminNetworkPolicy)\{\}\s*err :?= s\.Client\.Get\(ctx, client\.ObjectKey\{\s*Name:\s*"
     + STR + r",\s*\}, (\w+)\)\s*require\.NoErrorf\(t, err, " + STR + r"\)"),
    # --- policy mutation block: DeepCopy ... Patch
    ("mutate", r"mutate :?= (\w+)\.DeepCopy\(\)(.*?)(?:kubernetes\.PatchClusterNetworkPolicy\(t, s\.Client, (\w+), mutate, s\.TimeoutConfig\.GetTimeout\)"
     r"|err = s\.Client\.Patch\(ctx, mutate, client\.MergeFrom\((\w+)\)\)\s*require\.NoErrorf\(t, err, " + STR + r"\))"),
    # --- namespace relabel (main after v0.2.0)
    ("relabel", r"namespace :?= kubernetes\.GetNamespace\(t, s\.Client, " + STR + r", s\.TimeoutConfig\.GetTimeout\)\s*"
     r"mutateNamespace :?= namespace\.DeepCopy\(\)\s*mutateNamespace\.SetLabels\(map\[string\]string\{([^}]*)\}\)\s*"
     r"kubernetes\.PatchNamespace\(t, s\.Client, namespace, mutateNamespace, s\.TimeoutConfig\.GetTimeout\)"),
    # --- NetworkPolicy deletion (integration test)
    ("npdelete", r"np := &networkingv1\.NetworkPolicy\{\}\s*err := s\.Client\.Get\(ctx, client\.ObjectKey\{\s*Namespace:\s*" + STR
     + r",\s*Name:\s*" + STR + r",\s*\}, np\)\s*require\.NoErrorf\(t, err, " + STR + r"\)\s*err = s\.Client\.Delete\(ctx, np\)\s*require\.NoErrorf\(t, err, "
     + STR + r"\)"),
    # --- probes
    ("poke", r"kubernetes\.PokeServer\(t, s\.ClientSet, &s\.KubeConfig, " + STR + ", " + STR + ", " + STR
     + r",\s*(\w+)\.Status\.PodIP, int32\((\d+|s\.HostNetworkPorts\[\d+\])\), s\.TimeoutConfig, (true|false)\)"),
    ("poke1", r"success :?= kubernetes\.PokeServer\(t, s\.ClientSet, &s\.KubeConfig, " + STR + ", " + STR + ", " + STR
     + r",\s*(\w+)\.Status\.PodIP, int32\((\d+|s\.HostNetworkPorts\[\d+\])\), s\.TimeoutConfig\.RequestTimeout, (true|false)\)\s*assert\.True\(t, success\)"),
]
MASTER = re.compile("|".join("(?P<%s>%s)" % (n, p) for n, p in PATTERNS), re.S | re.M)


class Untranslatable(Exception):
    pass


def fail(msg):
    raise Untranslatable(msg)


HOST_PORTS = [HOST_PORT_START + i for i in range(8)]  # hostNetworkPortsAmount = 8


def render(text):
    """Apply the Go text/template the suite applies to every manifest."""
    out = re.sub(r"\{\{ index \.HostNetworkPorts (\d+) \}\}", lambda m: str(HOST_PORTS[int(m.group(1))]), text)
    if "{{" in out:
        fail("unrendered template")
    return out


def load_policies(paths):
    """name/kind -> document, from the vendored manifests."""
    out = {}
    for p in paths:
        with open(os.path.join(OUT, "cases", p)) as f:
            for d in yaml.safe_load_all(render(f.read())):
                if d:
                    out[(d["kind"], d["metadata"].get("name"))] = d
    return out


def base_pods():
    """namespace/pod -> hostNetwork, from the StatefulSets of the base manifests."""
    pods = {}
    with open(os.path.join(OUT, "base", "manifests.yaml")) as f:
        for d in yaml.safe_load_all(render(f.read())):
            if d and d["kind"] == "StatefulSet":
                for i in range(d["spec"]["replicas"]):
                    key = "%s/%s-%d" % (d["metadata"]["namespace"], d["metadata"]["name"], i)
                    pods[key] = bool(d["spec"]["template"]["spec"].get("hostNetwork", False))
    return pods


ACTION_CONST = re.compile(r"(?:api|v1alpha1)\.(?:ClusterNetworkPolicy|AdminNetworkPolicy|BaselineAdminNetworkPolicy)RuleAction(\w+)$")


def translate_mutation(body, kind, name, podvars, rule_names):
    """Translate the statements between DeepCopy and Patch into ops."""
    ops = []
    rest = body
    pats = [
        ("swap", r"(\w+) := mutate\.Spec\.(Egress|Ingress)\[(\d+)\]\s*mutate\.Spec\.\2\[\3\] = mutate\.Spec\.\2\[(\d+)\]\s*mutate\.Spec\.\2\[\4\] = \1"),
        ("action", r"mutate\.Spec\.(Egress|Ingress)\[(\d+)\]\.Action = ([\w.]+)"),
        ("priority", r"mutate\.Spec\.Priority = (\d+)"),
        ("namedport", r"(\w+) := mutate(?:\.DeepCopy\(\))?\.Spec\.(Egress|Ingress)\[(\d+)\]\s*(\w+) := " + STR
         + r"\s*\1\.(Protocols|Ports) = &?\[\][\w.]+\{\s*\{\s*(DestinationNamedPort|NamedPort):\s*&?\4,\s*\},\s*\}\s*mutate\.Spec\.\2\[\3\] = \1"),
        ("cidr", r"var mask string\s*if net\.IsIPv4String\((\w+)\.Status\.PodIP\) \{\s*mask = \"/32\"\s*\} else \{\s*mask = \"/128\"\s*\}\s*"
         r"newRule := \[\][\w.]+\{\s*\{\s*Name:\s*" + STR + r",\s*Action:\s*" + STR + r",\s*To: \[\][\w.]+\{\s*\{\s*Networks: \[\][\w.]+\{\s*"
         r"((?:[\w.]+\(\w+\.Status\.PodIP \+ mask\),\s*)+)\},\s*\},\s*\},\s*\},\s*\}\s*mutate\.Spec\.Egress = append\(newRule, mutate\.Spec\.Egress\.\.\.\)"),
    ]
    compiled = [(n, re.compile(p, re.S)) for n, p in pats]
    pos = 0
    while True:
        ws = re.compile(r"\s*").match(body, pos)
        pos = ws.end()
        if pos >= len(body):
            break
        for k, rx in compiled:
            m = rx.match(body, pos)
            if m:
                break
        else:
            fail("unrecognised mutation text: %r" % body[pos:].strip())
        pos = m.end()
        g = [m.group(0)] + list(m.groups())
        target = {"kind": kind, "name": name}
        if k == "swap":
            _, field, i, j = g[1], g[2].lower(), int(g[3]), int(g[4])
            names = rule_names[field]
            names[i], names[j] = names[j], names[i]
            ops.append(dict(op="swap_rules", **target, field=field, i=i, j=j, rules_after=list(names)))
        elif k == "action":
            field, i, const = g[1].lower(), int(g[2]), g[3]
            am = ACTION_CONST.match(const)
            if not am:
                fail("unknown action constant %s" % const)
            ops.append(dict(op="set", **target, path="spec.%s[%d].action" % (field, i), value=am.group(1)))
        elif k == "priority":
            ops.append(dict(op="set", **target, path="spec.priority", value=int(g[1])))
        elif k == "namedport":
            _, field, i, _, port, ports_field, key = g[1:8]
            api_field = {"Protocols": "protocols", "Ports": "ports"}[ports_field]
            api_key = {"DestinationNamedPort": "destinationNamedPort", "NamedPort": "namedPort"}[key]
            ops.append(dict(op="set", **target, path="spec.%s[%d].%s" % (field.lower(), int(i), api_field), value=[{api_key: port}]))
        elif k == "cidr":
            famvar, rname, action, nets = g[1], g[2], g[3], g[4]
            netvars = re.findall(r"\((\w+)\.Status\.PodIP \+ mask\)", nets)
            for v in netvars + [famvar]:
                if v not in podvars:
                    fail("unknown pod variable %s" % v)
            networks = [{"pod_ip_of": podvars[v], "prefix": "host"} for v in netvars]
            rule = {"name": rname, "action": action, "to": [{"networks": networks}]}
            rule_names["egress"].insert(0, rname)
            ops.append(dict(op="insert_rule", **target, field="egress", index=0, rule=rule,
                            rules_after=list(rule_names["egress"])))
    if not ops:
        fail("empty mutation")
    return ops


def translate_test(hdr, body, manifests_rel):
    policies = load_policies(manifests_rel)
    # live rule-name state per policy: the Go test re-reads the live object before each patch
    live = {}
    for (kind, name), d in policies.items():
        spec = d.get("spec", {})
        live[(kind, name)] = {
            "ingress": [r.get("name") for r in spec.get("ingress", []) or []],
            "egress": [r.get("name") for r in spec.get("egress", []) or []],
        }
    code = strip_comments(body)
    steps = []
    podvars_test = {}  # test-level pod variables (fetched before any t.Run)
    podvars = podvars_test
    polvars = {}
    cur = None
    pos = 0
    step_decl = set()

    def assign_pod(var, declare, pod):
        # Go scoping: `:=` declares in the current scope; `=` (or Get into an
        # existing object) writes to the variable wherever it was declared.
        nonlocal podvars
        if cur is None or declare or var in step_decl:
            podvars[var] = pod
            if cur is not None:
                step_decl.add(var)
        elif var in podvars_test:
            podvars_test[var] = pod
            podvars[var] = pod
        else:
            fail("assignment to undeclared pod variable %s" % var)

    for m in MASTER.finditer(code):
        gap = code[pos:m.start()]
        if gap.strip():
            fail("unrecognised text in %s: %r" % (hdr["ShortName"], gap.strip()))
        pos = m.end()
        k = m.lastgroup
        g = [x for x in m.groups() if x is not None][1:]
        if k == "run":
            if cur is not None:
                fail("nested t.Run")
            cur = {"name": g[0], "parts": [{"mutate": [], "probes": []}]}
            podvars = dict(podvars_test)
            polvars = {}
            step_decl = set()
        elif k == "run_end":
            steps.append(cur)
            cur = None
            podvars = podvars_test
        elif k == "noop":
            pass
        elif k == "getpod":
            assign_pod(g[0], ":=" in m.group(0).split("kubernetes.GetPod")[0], "%s/%s" % (g[1], g[2]))
        elif k == "getpod1":
            if g[0] != g[3]:
                fail("pod var mismatch %s/%s" % (g[0], g[3]))
            assign_pod(g[0], ":=" in m.group(0).split("&v1.Pod")[0], "%s/%s" % (g[1], g[2]))
        elif k == "getpod1b":
            assign_pod(g[2], False, "%s/%s" % (g[0], g[1]))
        elif k == "getpol":
            if cur is None:
                fail("policy fetched outside a subtest")
            polvars[g[0]] = (g[1], g[2])
        elif k == "getpol1":
            if cur is None:
                fail("policy fetched outside a subtest")
            if g[0] != g[3]:
                fail("policy var mismatch")
            polvars[g[0]] = (g[1], g[2])
        elif k in ("mutate", "relabel", "npdelete"):
            if cur is None:
                fail("mutation outside a subtest")
            if cur["parts"][-1]["probes"]:
                cur["parts"].append({"mutate": [], "probes": []})
            part = cur["parts"][-1]
            if k == "mutate":
                src, inner, patched_from = g[0], g[1], g[2]
                if src != patched_from:
                    fail("DeepCopy of %s but MergeFrom(%s)" % (src, patched_from))
                if src not in polvars:
                    fail("policy variable %s not fetched in this subtest" % src)
                kind, name = polvars[src]
                if (kind, name) not in live:
                    fail("policy %s/%s not in manifests" % (kind, name))
                part["mutate"] += translate_mutation(inner, kind, name, podvars, live[(kind, name)])
            elif k == "relabel":
                labels = dict(re.findall(r'"([^"]+)":\s*"([^"]*)"', g[1]))
                part["mutate"].append(dict(op="set_namespace_labels", name=g[0], labels=labels))
            else:
                part["mutate"].append(dict(op="delete", kind="NetworkPolicy", namespace=g[0], name=g[1]))
        elif k in ("poke", "poke1"):
            if cur is None:
                fail("probe outside a subtest")
            ns, pod, proto, var, port, ok = g[:6]
            if var not in podvars:
                fail("unknown pod variable %s" % var)
            probe = {"from": "%s/%s" % (ns, pod), "to": podvars[var], "protocol": proto.upper()}
            hm = re.match(r"s\.HostNetworkPorts\[(\d+)\]", port)
            if hm:
                probe["port"] = HOST_PORT_START + int(hm.group(1))
                probe["host_network_port_index"] = int(hm.group(1))
            else:
                probe["port"] = int(port)
            pods = base_pods()
            for end in (probe["from"], probe["to"]):
                if end not in pods:
                    fail("probe endpoint %s is not a pod of the base manifests" % end)
            if pods[probe["from"]]:
                fail("probe from a host-network pod: not expected by the schema")
            if pods[probe["to"]]:
                probe["to_host_network"] = True
            probe["expect"] = "allow" if ok == "true" else "deny"
            cur["parts"][-1]["probes"].append(probe)
        else:
            fail("unhandled %s" % k)
    if code[pos:].strip():
        fail("unrecognised trailing text in %s: %r" % (hdr["ShortName"], code[pos:].strip()))
    if cur is not None:
        fail("unterminated t.Run")
    out_steps = []
    for st in steps:
        n = len(st["parts"])
        for i, p in enumerate(st["parts"]):
            if not p["probes"]:
                fail("step part without probes in %s" % st["name"])
            s = {"name": st["name"]}
            if n > 1:
                s["part"] = i + 1
            if p["mutate"]:
                s["mutate"] = p["mutate"]
            s["probes"] = p["probes"]
            out_steps.append(s)
    return out_steps


def parse_file(path):
    text = open(path).read()
    tests = []
    for m in re.finditer(r"(?m)^var (\w+) = suite\.ConformanceTest\{\n(.*?)^\}\n", text, re.S):
        block = re.sub(r"[ \t]*//[^\n]*", "", m.group(2))
        if '"' in re.sub(r'"[^"\n]*"', "", block.split("Test: func")[0]):
            fail("odd string literal in header")
        hm = re.match(r"\tShortName:\s*" + STR + r",\n\tDescription:\s*" + STR + r",\n\tFeatures: \[\]suite\.SupportedFeature\{\n((?:\t\tsuite\.\w+,\n)+)\t\},\n"
                      r"\tManifests: \[\]string\{((?:" + STR + r",?\s*)+)\},\n\tTest: func\(t \*testing\.T, s \*suite\.ConformanceTestSuite\) \{\n(.*)\t\},\n$", block, re.S)
        if not hm:
            fail("unexpected ConformanceTest header in %s: %r" % (path, block[:400]))
        hdr = {"ShortName": hm.group(1), "Description": hm.group(2),
               "Features": re.findall(r"suite\.(\w+)", hm.group(3)),
               "Manifests": re.findall(STR, hm.group(4))}
        manifests_rel = ["../" + x for x in hdr["Manifests"]]
        steps = translate_test(hdr, hm.group(6), manifests_rel)
        tests.append((hdr, manifests_rel, steps))
    registered = re.search(r"ConformanceTests = append\(ConformanceTests,\s*((?:\w+,\s*)+)\)", text)
    names = re.findall(r"(\w+),", registered.group(1)) if registered else []
    defined = re.findall(r"(?m)^var (\w+) = suite\.ConformanceTest\{", text)
    if len(defined) != len(tests):
        fail("could not parse every ConformanceTest in %s" % path)
    return tests, names, defined


# ---------------------------------------------------------------- YAML output

PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")
RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        if PLAIN.match(v) and v.lower() not in RESERVED and not re.match(r"^[0-9.]+$", v):
            return v
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (k, scalar(x)) for k, x in v.items()) + "}"
    raise TypeError(v)


def emit(src_rel, tests):
    lines = []
    lines.append("# Declarative translation of an upstream network-policy-api conformance test;")
    lines.append("# schema and derivation: ../../README.md. Generated by ../../translate.py, do not edit by hand.")
    lines.append("source:")
    lines.append("  repository: https://github.com/kubernetes-sigs/network-policy-api")
    lines.append("  path: %s" % src_rel)
    lines.append("  ref: %s" % REF)
    lines.append("  commit: %s" % COMMIT)
    lines.append("base: ../base/manifests.yaml")
    lines.append("host_network_ports: %s" % scalar(HOST_PORTS))
    lines.append("tests:")
    for hdr, manifests, steps in tests:
        lines.append("  - short_name: %s" % hdr["ShortName"])
        lines.append("    description: %s" % json.dumps(hdr["Description"]))
        lines.append("    features: %s" % scalar(hdr["Features"]))
        lines.append("    policies: %s" % scalar(manifests))
        lines.append("    steps:")
        for s in steps:
            lines.append("      - name: %s" % json.dumps(s["name"]))
            if "part" in s:
                lines.append("        part: %d" % s["part"])
            if "mutate" in s:
                lines.append("        mutate:")
                for op in s["mutate"]:
                    lines.append("          - " + scalar(op))
            lines.append("        probes:")
            for p in s["probes"]:
                lines.append("          - " + scalar(p))
    return "\n".join(lines) + "\n"


def main():
    tests_dir = os.path.join(UP, "tests")
    files = sorted(f for f in os.listdir(tests_dir) if f.endswith(".go") and f != "main.go")
    os.makedirs(os.path.join(OUT, "cases"), exist_ok=True)
    summary = []
    all_registered, all_defined = [], []
    for f in files:
        tests, reg, dfn = parse_file(os.path.join(tests_dir, f))
        all_registered += reg
        all_defined += dfn
        if not tests:
            fail("no ConformanceTest in %s" % f)
        text = emit("conformance/tests/" + f, tests)
        # round-trip check of the emitted YAML
        yaml.safe_load(text)
        with open(os.path.join(OUT, "cases", f[:-3] + ".yaml"), "w") as o:
            o.write(text)
        nsteps = sum(len(s) for _, _, s in tests)
        nprobes = sum(len(st["probes"]) for _, _, s in tests for st in s)
        summary.append((f, len(tests), nsteps, nprobes))
    # tests are registered by init() functions, sometimes in another file than the definition
    if sorted(all_registered) != sorted(all_defined) or len(set(all_defined)) != len(all_defined):
        fail("registered %s != defined %s" % (sorted(all_registered), sorted(all_defined)))
    for row in summary:
        print("%-70s tests=%d steps=%d probes=%d" % row)
    print("files=%d tests=%d steps=%d probes=%d" % (len(summary), sum(r[1] for r in summary),
                                                     sum(r[2] for r in summary), sum(r[3] for r in summary)))


if __name__ == "__main__":
    try:
        main()
    except Untranslatable as e:
        sys.exit("translate.py: " + str(e))
