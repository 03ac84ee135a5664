"""Two versions of the service side by side, A/B, in alternating bursts.

    python -m bench.interleaved --base 423d57f                  # that commit against the working tree
    python -m bench.interleaved --base main --clients 1 8 --rounds 10 --model face-attributes-resnet18-128

Single runs of ``bench.serving`` on a shared VM move by 30 % or more from one run to the next:
more than most levers are worth. This starts both versions at once, on loopback, each as users run
it (``bentoml serve``, in a ``BENTOML_HOME`` of its own):
- the base from a git worktree of ``--base``;
- the other from the working tree.
For each client count it then alternates bursts of ``--seconds`` between them, the order flipped
every round, so the machine's drift hits both alike. It prints, per version, the medians over
rounds of req/s, p50, p99 and server CPU per request, and in how many rounds the working tree's
p50 was the lower. Writes ``interleaved.json`` and ``interleaved.md`` into ``--out``.
"""

import argparse
import json
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.options import model_parser
from bench.servers import Server, own_home
from bench.serving import combined, measure_point, taking_turns
from harness.faces import face_jpeg
from harness.load import image_uploads
from harness.server import ROOT, RunningServer, serving
from serving.settings import MODEL_ENV

VERSIONS = ("base", "working tree")


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """The project at ``ref``, checked out beside this one for as long as it is needed."""
    with tempfile.TemporaryDirectory() as parent:
        folder = Path(parent) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            yield folder
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=True)


def compare(servers: dict[str, RunningServer], clients: int, args: argparse.Namespace) -> dict:
    uploads = image_uploads([face_jpeg(seed) for seed in range(16)])
    versions = {name: Server(s.url, "/predict", uploads, s.pid, None) for name, s in servers.items()}
    for server in versions.values():
        measure_point(server, clients, args.warmup)
    rounds = taking_turns(versions, clients, args.rounds, args.seconds)
    lower = sum(
        b["p50_ms"] < a["p50_ms"] for a, b in zip(rounds["base"], rounds["working tree"], strict=True)
    )
    medians = {version: combined(points) for version, points in rounds.items()}
    return {"clients": clients, "medians": medians, "working_tree_p50_lower_in": lower, "rounds": rounds}


def markdown(results: list[dict], base: str, target: str, model: str) -> str:
    lines = [
        f"`{target}`, model `{model}`: base `{base}` against the working tree, alternating bursts",
        "",
        "| clients | version | req/s | p50 ms | p99 ms | server CPU ms/req | errors | p50 lower (rounds) |",
        "|--:|--|--:|--:|--:|--:|--:|--:|",
    ]
    for result in results:
        for version in VERSIONS:
            m = result["medians"][version]
            lower = f"{result['working_tree_p50_lower_in']} of {len(result['rounds'][version])}"
            lines.append(
                f"| {result['clients']} | {version} | {m['requests_per_s']:.0f} | {m['p50_ms']:.2f} "
                f"| {m['p99_ms']:.1f} | {m['server_cpu_ms_per_request']:.2f} | {m['errors']} "
                f"| {lower if version == 'working tree' else ''} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument(
        "--base", required=True, help="git commit, branch or tag to compare the working tree with"
    )
    parser.add_argument("--target", default="service:FaceAttributesOneProcess",
                        help="the service both serve (default: %(default)s)")  # fmt: skip
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32],
                        help="closed-loop clients, one comparison each (default: 1 8 32)")  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=10, help="bursts per version and client count (default: 10)"
    )
    parser.add_argument("--seconds", type=float, default=3, help="seconds per burst (default: 3)")
    parser.add_argument(
        "--warmup", type=float, default=2, help="seconds of load per server first (default: 2)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        base = stack.enter_context(worktree(args.base))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        env = {MODEL_ENV: args.model}
        servers = {
            "base": stack.enter_context(serving(args.target, own_home(work / "a"), cwd=base, env=env)),
            "working tree": stack.enter_context(serving(args.target, own_home(work / "b"), env=env)),
        }
        results = [compare(servers, clients, args) for clients in args.clients]
    table = markdown(results, args.base, args.target, args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "interleaved.json").write_text(json.dumps(results, indent=2))
    (args.out / "interleaved.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
