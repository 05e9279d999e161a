#!/usr/bin/env python3
"""Runs the shell examples of the README and docs/*.md against a fresh tokend, so the docs cannot
drift from the server (scripts/docs-examples.sh builds the binary and calls this).

For each document: a new working directory with an empty SQLite database (the default
./tokend.db), `./target/release/tokend`, `./target/debug/tokend` and a `tokend` on PATH all
pointing at the binary under test, and a server started there on a free port with
TOKEND_BOOTSTRAP_ADMIN_PASSWORD='correct horse battery staple' (the password the docs use). Every
```sh block of the document then runs, in order, in ONE bash session (so `$AT`, `$RT`, … carry
from block to block), with `127.0.0.1:8080` (and `https://auth.example.com`, the production host
of operations.md) rewritten to the server's address.

What is checked:
- a ```json, ```text or ```http block right after a ```sh block (blank lines between at most) is
  that block's output (stdout and stderr together): line by line, JSON compared by its keys and
  values, with ids, times, tokens, key ids and generated passwords taken as "any such value", and
  `…` in the expected text matching anything. An ```http block compares the status line, the
  headers it lists (all of them unless it says `…other headers…`) and the body.
- a ```sh block without an output block must run without a failing command.
- after any block, every variable it assigns (`NAME=…`) must be non-empty and not `null`.
- every relative link of the documents names a file that exists and, with `#anchor`, a heading
  of it (GitHub's anchors).

Markers in the markdown (HTML comments, invisible on GitHub), kept rare:
- `<!-- docs-run: skip: REASON -->` right before a ```sh block: the block is not run.
- `<!-- docs-run: run: REASON` … commands … `-->`: commands run at that point of the session,
  for what the prose asks the reader to do by hand (paste a value from the output above, which is
  in the file `$DOCS_RUN_OUTPUT`).
- `<!-- docs-run: server-env: NAME=VALUE … -->`: settings of this document's server, as its prose
  says to start it.
- `<!-- docs-run: server-output -->` right before a fenced block: its lines must appear in what the
  server printed when it started.

Exit status 0 when every example ran as documented; 1 otherwise, with one report per difference
naming the document, the line of the block and what differed.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The documents whose examples run. docs/benchmarks.md is left out on purpose: its commands are
# load benchmarks that run for minutes, and its figures are measurements, not outputs to compare.
DOCS = [
    "README.md",
    "docs/api.md",
    "docs/account.md",
    "docs/admin.md",
    "docs/revocation.md",
    "docs/operations.md",
    "docs/security.md",
    "docs/spa.md",
]

ADMIN_PASSWORD = "correct horse battery staple"
OUTPUT_INFOS = {"json", "text", "http"}
FENCE = re.compile(r"^(\s*)(```+)([^`\s]*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-run:\s*([a-z-]+)\s*:?\s*(.*)$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    skip: str | None = None  # the reason, when a skip marker precedes it
    server_output: bool = False
    output: "Block | None" = None  # the output block that follows a sh block


@dataclass
class Run:
    """Hidden commands of a `run` marker."""

    line: int
    reason: str
    text: str


@dataclass
class Doc:
    path: str
    steps: list = field(default_factory=list)  # Blocks (sh) and Runs, in order
    server_env: dict = field(default_factory=dict)
    server_output: list = field(default_factory=list)  # Blocks to find in the server's output
    errors: list = field(default_factory=list)


def parse(path: str) -> Doc:
    doc = Doc(path)
    lines = open(os.path.join(REPO, path), encoding="utf-8").read().split("\n")
    pending_skip = None  # (line, reason)
    pending_server_output = None
    last_sh = None  # the sh block an output block may belong to
    gap_only_blank = False
    i = 0
    while i < len(lines):
        line = lines[i]
        m = DIRECTIVE.match(line)
        if m:
            kind, rest = m.group(1), m.group(2)
            body = [rest]
            first = i + 1
            while "-->" not in body[-1]:
                i += 1
                if i >= len(lines):
                    doc.errors.append(f"{path}:{first}: unterminated docs-run marker")
                    return doc
                body.append(lines[i])
            body[-1] = body[-1][: body[-1].index("-->")]
            start = first
            if kind == "skip":
                pending_skip = (start, body[0].strip())
                if not pending_skip[1]:
                    doc.errors.append(f"{path}:{start}: a skip marker needs a reason")
            elif kind == "run":
                doc.steps.append(Run(start, body[0].strip(), "\n".join(body[1:])))
            elif kind == "server-env":
                for pair in " ".join(body).split():
                    name, _, value = pair.partition("=")
                    doc.server_env[name] = value
            elif kind == "server-output":
                pending_server_output = start
            else:
                doc.errors.append(f"{path}:{start}: unknown docs-run marker {kind!r}")
            last_sh = None
            i += 1
            continue
        m = FENCE.match(line)
        if not m:
            if line.strip():
                last_sh = None
            i += 1
            continue
        indent, ticks, info = m.group(1), m.group(2), m.group(3)
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != ticks:
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1  # the closing fence
        block = Block(start, info, "\n".join(body))
        if pending_server_output is not None:
            block.server_output = True
            doc.server_output.append(block)
            pending_server_output = None
            last_sh = None
            continue
        if info == "sh":
            if pending_skip is not None:
                block.skip = pending_skip[1]
                pending_skip = None
            doc.steps.append(block)
            last_sh = block
            continue
        if pending_skip is not None:
            doc.errors.append(
                f"{path}:{pending_skip[0]}: a skip marker must come right before a ```sh block"
            )
            pending_skip = None
        if info in OUTPUT_INFOS and last_sh is not None and last_sh.output is None:
            last_sh.output = block
        last_sh = None
    if pending_skip is not None:
        doc.errors.append(f"{path}:{pending_skip[0]}: a skip marker with no ```sh block after it")
    return doc


# ---- comparing outputs -------------------------------------------------------------------------

VOLATILE_NUMBERS = {"exp", "iat", "nbf", "elapsed_ms", "idx"}

NORMALIZERS = [
    (re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"), "<jwt>"),
    (re.compile(r"tokend_(rt|pat|cs|ac)_[A-Za-z0-9_-]+"), r"tokend_\1_<value>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"), "<time>"),
    (re.compile(r"\bcurl/[0-9.]+"), "curl/<version>"),
    (re.compile(r"\b\d+ ms\b"), "<n> ms"),
]
# Key ids, generated passwords, public keys: 16 or more characters of base64url drawn from at
# least two of upper case, lower case and digits (so `credentials_too_long` stays a word).
RANDOM_WORD = re.compile(r"(?<![A-Za-z0-9_<-])[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_>-])")


def is_random(word: str) -> bool:
    classes = [r"[A-Z]", r"[a-z]", r"[0-9]"]
    return sum(1 for c in classes if re.search(c, word)) >= 2


def normalize(text: str) -> str:
    for pattern, replacement in NORMALIZERS:
        text = pattern.sub(replacement, text)
    text = RANDOM_WORD.sub(lambda m: "<random>" if is_random(m.group(0)) else m.group(0), text)
    return re.sub(r"\s+", " ", text).strip()


# The values that stand for one thing (a token, an id, a key id): where the expected output shows
# the same one twice, the actual output must too (the grace window's point is that two answers
# carry the same token).
IDENTITY = re.compile(
    r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"
    r"|tokend_(?:rt|pat|cs|ac)_[A-Za-z0-9_-]+"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])"
)


def identities(text: str, expected: bool) -> list:
    """The identity values in `text`, in order; an expected one cut short with `…` is None."""
    out = []
    for m in IDENTITY.finditer(text):
        value = m.group(0)
        if not (value.startswith(("eyJ", "tokend_")) or "-" in value[8:9] or is_random(value)):
            continue
        elided = expected and text[m.end() : m.end() + 1] == "…"
        out.append(None if elided else value)
    return out


def string_pairs(expected, actual, where="") -> list:
    """(path, expected string, actual string) for the string leaves two JSON values share."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return [p for k in expected if k in actual for p in string_pairs(expected[k], actual[k], f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [p for n, (e, a) in enumerate(zip(expected, actual)) for p in string_pairs(e, a, f"{where}[{n}]")]
    if isinstance(expected, str) and isinstance(actual, str):
        return [(where, expected, actual)]
    return []


def consistency_diff(pairs: list) -> list:
    """`pairs`: (where, expected text, actual text). The same expected identity in two places must
    be the same actual value in both."""
    seen = {}  # expected value -> (where, actual value)
    out = []
    for where, exp, act in pairs:
        e_ids, a_ids = identities(exp, True), identities(act, False)
        if len(e_ids) != len(a_ids):
            continue
        for e, a in zip(e_ids, a_ids):
            if e is None:
                continue
            if e in seen and seen[e][1] != a:
                out.append(
                    f"{where}: expected the same value as {seen[e][0]} ({e}), got {a} there and {seen[e][1]} at {seen[e][0]}"
                )
            seen.setdefault(e, (where, a))
    return out


def text_matches(expected: str, actual: str) -> bool:
    exp, act = normalize(expected), normalize(actual)
    if "…" not in exp:
        return exp == act
    pattern = ".*?".join(re.escape(part) for part in exp.split("…"))
    return re.fullmatch(pattern, act, re.S) is not None


def json_diff(expected, actual, where="") -> list:
    """Differences between an expected and an actual JSON value, as readable lines."""
    here = where or "."
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"at {here}: expected an object, got {json.dumps(actual)}"]
        out = []
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        if missing:
            out.append(f"at {here}: missing key(s) {', '.join(missing)}")
        if extra:
            out.append(f"at {here}: unexpected key(s) {', '.join(extra)}")
        for key in expected:
            if key in actual:
                if key in VOLATILE_NUMBERS and isinstance(expected[key], (int, float)):
                    if not isinstance(actual[key], (int, float)) or isinstance(actual[key], bool):
                        out.append(f"at {where}.{key}: expected a number, got {json.dumps(actual[key])}")
                    continue
                out += json_diff(expected[key], actual[key], f"{where}.{key}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"at {here}: expected an array, got {json.dumps(actual)}"]
        if len(expected) != len(actual):
            return [
                f"at {here}: expected {len(expected)} element(s), got {len(actual)}: {json.dumps(actual)}"
            ]
        out = []
        for n, (e, a) in enumerate(zip(expected, actual)):
            out += json_diff(e, a, f"{where}[{n}]")
        return out
    if isinstance(expected, str):
        if isinstance(actual, str) and text_matches(expected, actual):
            return []
        return [f"at {here}: expected {json.dumps(expected)}, got {json.dumps(actual)}"]
    if type(expected) is not type(actual) or expected != actual:
        return [f"at {here}: expected {json.dumps(expected)}, got {json.dumps(actual)}"]
    return []


def as_json(text: str):
    text = text.strip()
    if not text or text[0] not in "{[":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def line_diff(expected: str, actual: str) -> list:
    exp_json, act_json = as_json(expected), as_json(actual)
    if exp_json is not None:
        if act_json is None:
            return [f"expected JSON {expected.strip()}", f"     got {actual.strip() or '(nothing)'}"]
        return json_diff(exp_json, act_json)
    if text_matches(expected, actual):
        return []
    return [f"expected {expected.strip()}", f"     got {actual.strip() or '(nothing)'}"]


HEADER_LINE = re.compile(r"^[A-Za-z0-9-]+: ")


def lines_of(text: str) -> list:
    lines = [l.rstrip("\r").rstrip() for l in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def compare_lines(expected: str, actual: str) -> list:
    exp, act = lines_of(expected), lines_of(actual)
    whole = as_json(expected)
    if whole is not None and len(exp) > 1 and all(as_json(l) is None for l in exp):
        # One pretty-printed JSON value over several lines.
        return line_diff(expected, actual)
    if exp and all(HEADER_LINE.match(l) for l in exp) and all(HEADER_LINE.match(l) for l in act):
        # Header lines: HTTP does not order them.
        return header_diff(exp, act, exhaustive=True)
    if len(exp) != len(act):
        return (
            [f"expected {len(exp)} line(s), got {len(act)}; expected:"]
            + [f"  {l}" for l in exp]
            + ["got:"]
            + [f"  {l}" for l in act]
        )
    out = []
    pairs = []
    for n, (e, a) in enumerate(zip(exp, act), start=1):
        for d in line_diff(e, a):
            out.append(f"line {n}: {d}")
        e_json, a_json = as_json(e), as_json(a)
        if e_json is not None and a_json is not None:
            pairs += [(f"line {n} at {w or '.'}", x, y) for w, x, y in string_pairs(e_json, a_json)]
        else:
            pairs.append((f"line {n}", e, a))
    return out or consistency_diff(pairs)


def header_diff(expected: list, actual: list, exhaustive: bool) -> list:
    def split(line):
        name, _, value = line.partition(":")
        return name.strip().lower(), value.strip()

    def same_value(expected_value, actual_value):
        if text_matches(expected_value, actual_value):
            return True
        # A comma-separated list (allowed methods, headers) in any order.
        parts = lambda v: sorted(p.strip().lower() for p in v.split(","))
        return "," in expected_value and parts(expected_value) == parts(actual_value)

    remaining = [split(l) for l in actual]
    out = []
    for line in expected:
        name, value = split(line)
        match = next(
            (h for h in remaining if h[0] == name and same_value(value, h[1])), None
        )
        if match is None:
            got = [f"{h[0]}: {h[1]}" for h in remaining if h[0] == name]
            out.append(f"header {name}: expected {value!r}, got {got or 'no such header'}")
        else:
            remaining.remove(match)
    if exhaustive and remaining:
        out.append("unexpected header(s): " + "; ".join(f"{n}: {v}" for n, v in remaining))
    return out


def compare_http(expected: str, actual: str) -> list:
    exp_lines = lines_of(expected)
    act = actual.replace("\r\n", "\n")
    head, _, act_body = act.partition("\n\n")
    act_head = lines_of(head)
    if not exp_lines or not act_head:
        return ["expected an HTTP response, got " + (actual.strip() or "(nothing)")]
    out = []
    if not text_matches(exp_lines[0], act_head[0]):
        out.append(f"status line: expected {exp_lines[0]!r}, got {act_head[0]!r}")
    exp_headers, exp_body, others, in_body = [], [], False, False
    for line in exp_lines[1:]:
        if in_body:
            exp_body.append(line)
        elif not line.strip():
            in_body = True
        elif line.strip() in ("…other headers…", "... other headers ..."):
            others = True
        else:
            exp_headers.append(line)
    out += header_diff(exp_headers, act_head[1:], exhaustive=not others)
    out += [f"body: {d}" for d in compare_lines("\n".join(exp_body), act_body)]
    return out


def compare(block: Block, actual: str) -> list:
    if block.info == "http":
        return compare_http(block.text, actual)
    return compare_lines(block.text, actual)


# ---- running -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rewrite(text: str, port: int) -> str:
    base = f"127.0.0.1:{port}"
    return (
        text.replace("127.0.0.1:8080", base)
        .replace("127.0.0.1%3A8080", f"127.0.0.1%3A{port}")
        .replace("https://auth.example.com", f"http://{base}")
    )


ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")

PRELUDE = r"""
__docs_err() { printf 'exit %s: %s\n' "$1" "$2" >> "$__D/$__blk.errs"; }
trap '__docs_err $? "$BASH_COMMAND"' ERR
# `cargo run [options] -- ARGS` as the docs write it, without cargo: the binary under test.
cargo() {
    if [ "${1-}" != run ]; then echo "docs-run: only 'cargo run … -- ARGS' is available" >&2; return 127; fi
    while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
    [ $# -gt 0 ] && shift
    "$__DOCS_BIN" "$@"
}
"""


def script_for(doc: Doc, port: int) -> str:
    parts = [PRELUDE]
    for n, step in enumerate(doc.steps):
        if isinstance(step, Block) and step.skip is not None:
            continue
        text = rewrite(step.text, port)
        names = []
        for l in text.split("\n"):
            m = ASSIGNMENT.match(l)
            if m and m.group(1) not in names:
                names.append(m.group(1))
        checks = "\n".join(
            f'if [ -z "${{{v}-}}" ] || [ "${{{v}}}" = null ]; then echo {v} >> "$__D/{n}.empty"; fi'
            for v in names
        )
        parts.append(
            f"__blk={n}\n: > \"$__D/{n}.ran\"\n{{\n{text}\n}} > \"$__D/{n}.out\" 2>&1 < /dev/null\n"
            f"__blk=none\n{checks}\nDOCS_RUN_OUTPUT=\"$__D/{n}.out\"\n"
        )
    return "\n".join(parts)


def wait_ready(port: int, server: subprocess.Popen, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_doc(path: str, binary: str, keep: bool, verbose: bool) -> tuple:
    """Returns (path, failures, blocks run, seconds)."""
    started = time.time()
    doc = parse(path)
    if doc.errors:
        return path, doc.errors, 0, 0.0
    runnable = [s for s in doc.steps if not (isinstance(s, Block) and s.skip is not None)]
    if not runnable and not doc.server_output:
        return path, [], 0, 0.0
    work = tempfile.mkdtemp(prefix="tokend-docs-")
    outdir = os.path.join(work, ".docs-run")
    os.makedirs(outdir)
    for rel in ("target/release", "target/debug", "bin"):
        os.makedirs(os.path.join(work, rel))
        os.symlink(binary, os.path.join(work, rel, "tokend"))
    port = free_port()
    base_env = {
        "PATH": os.path.join(work, "bin") + os.pathsep + os.environ.get("PATH", ""),
        "HOME": work,  # no ~/.curlrc of the person running this
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    server_env = dict(
        base_env,
        TOKEND_BIND=f"127.0.0.1:{port}",
        TOKEND_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TOKEND_LOG="info",
        **doc.server_env,
    )
    failures = []
    server_log = open(os.path.join(work, "server.log"), "w+")
    server = subprocess.Popen(
        [binary, "serve"],
        cwd=work,
        env=server_env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        if not wait_ready(port, server, 60):
            server_log.seek(0)
            return path, [f"{path}: the server did not start:\n{server_log.read()[-2000:]}"], 0, 0.0
        script = script_for(doc, port)
        with open(os.path.join(work, "examples.sh"), "w") as f:
            f.write(script)
        shell_env = dict(base_env, __D=outdir, __DOCS_BIN=binary)
        shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc", os.path.join(work, "examples.sh")],
            cwd=work,
            env=shell_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            shell_out, _ = shell.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            stop(shell)
            shell_out = b""
            failures.append(f"{path}: the examples did not finish within 120 s")
        if shell_out.strip():
            failures.append(f"{path}: the session printed outside any block:\n{shell_out.decode(errors='replace')}")
        # The server's start-up output, where a marker says what it prints.
        server_log.flush()
        server_log.seek(0)
        printed = [normalize(l) for l in server_log.read().split("\n")]
        for block in doc.server_output:
            for line in lines_of(rewrite(block.text, port)):
                if line.strip() and normalize(line) not in printed:
                    failures.append(
                        f"{path}:{block.line}: the server did not print this line when it started:\n"
                        f"    {line.strip()}"
                    )
        ran = 0
        for n, step in enumerate(doc.steps):
            if isinstance(step, Block) and step.skip is not None:
                continue
            where = (
                f"{path}:{step.line}"
                if isinstance(step, Block)
                else f"{path}:{step.line} (docs-run run marker)"
            )

            def read(suffix):
                p = os.path.join(outdir, f"{n}.{suffix}")
                return open(p, encoding="utf-8", errors="replace").read() if os.path.exists(p) else None

            if read("ran") is None:
                failures.append(f"{where}: never ran (the session stopped before it)")
                continue
            ran += 1
            output = read("out") or ""
            if verbose:
                print(f"--- {where}\n{output}", file=sys.stderr)
            problems = []
            empty = read("empty")
            if empty:
                problems.append("empty or null after the block: " + ", ".join(empty.split()))
            if isinstance(step, Block) and step.output is not None:
                diff = compare(
                    Block(step.output.line, step.output.info, rewrite(step.output.text, port)),
                    output,
                )
                if diff:
                    problems.append(
                        f"its output differs from the ```{step.output.info} block at line "
                        f"{step.output.line}:\n      " + "\n      ".join(diff)
                    )
            else:
                errs = read("errs")
                if errs:
                    problems.append("a command failed: " + errs.strip().replace("\n", "; "))
            if problems:
                shown = output if len(output) < 3000 else output[:3000] + "…"
                failures.append(
                    f"{where}: " + "\n    ".join(problems) + "\n    the block printed:\n      "
                    + ("\n      ".join(shown.rstrip().split("\n")) if shown.strip() else "(nothing)")
                )
        return path, failures, ran, time.time() - started
    finally:
        stop(server)
        server_log.close()
        if keep:
            print(f"{path}: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


SELF_TEST_DOC = """# self-test
```sh
curl -s -w '\\n' http://127.0.0.1:8080/healthz
curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:8080/api/me
```

```text
{"status":"broken"}
200
```

```sh
MISSING=$(curl -s http://127.0.0.1:8080/healthz | jq -r .nothing)
```

```sh
curl -s -w '\\n' http://127.0.0.1:8080/healthz
```

```json
{"status":"ok"}
```
"""


def self_test(binary: str) -> bool:
    """The runner must be able to fail: a document with two wrong examples and a right one."""
    path = os.path.join("target", "docs-run-self-test.md")
    full = os.path.join(REPO, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(SELF_TEST_DOC)
    try:
        _, failures, ran, _ = run_doc(path, binary, keep=False, verbose=False)
    finally:
        os.remove(full)
    text = "\n".join(failures)
    ok = (
        ran == 3
        and len(failures) == 2
        and f"{path}:2:" in text
        and 'expected "broken", got "ok"' in text
        and "expected 200" in text
        and f"{path}:12:" in text
        and "MISSING" in text
    )
    if not ok:
        print("docs-run self-test: the runner did not report the broken examples as expected:", file=sys.stderr)
        print(text or "(no failures reported)", file=sys.stderr)
    return ok


# ---- links -------------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: str) -> set:
    found, seen, fenced = set(), {}, False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            base = slug(line.lstrip("#"))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def link_failures(docs: list) -> list:
    """Links to a file that does not exist, or to a heading that a document does not have."""
    out = []
    for doc in docs:
        fenced = False
        for number, line in enumerate(open(doc, encoding="utf-8"), 1):
            if line.startswith("```"):
                fenced = not fenced
            if fenced:
                continue
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file, _, anchor = target.partition("#")
                path = os.path.normpath(os.path.join(os.path.dirname(doc), file)) if file else doc
                if not os.path.exists(path):
                    out.append(f"{doc}:{number}: the link {target} names no file")
                elif anchor and path.endswith(".md") and anchor not in anchors(path):
                    out.append(f"{doc}:{number}: the link {target} names no heading of {path}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="the tokend binary to test")
    parser.add_argument("--keep", action="store_true", help="keep each document's working directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every block's output")
    parser.add_argument("docs", nargs="*", help=f"documents to run (default: {' '.join(DOCS)})")
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    docs = args.docs or DOCS
    started = time.time()
    if not self_test(binary):
        return 1
    broken = link_failures(docs)
    for failure in broken:
        print(f"FAIL {failure}\n")
    total_failures = len(broken)
    total_blocks = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(docs)) as pool:
        results = list(pool.map(lambda d: run_doc(d, binary, args.keep, args.verbose), docs))
    for path, failures, ran, seconds in results:
        total_blocks += ran
        status = "ok" if not failures else f"{len(failures)} FAILED"
        print(f"docs-run: {path}: {ran} block(s) run, {status} ({seconds:.1f} s)")
        for failure in failures:
            print(f"FAIL {failure}\n")
        total_failures += len(failures)
    skipped = [
        (d, s)
        for d in docs
        for s in parse(d).steps
        if isinstance(s, Block) and s.skip is not None
    ]
    print(
        f"docs-run: {total_blocks} block(s) run, {len(skipped)} skipped by a marker, "
        f"{total_failures} failure(s), {time.time() - started:.1f} s"
    )
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main())
