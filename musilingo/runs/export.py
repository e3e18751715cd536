"""A run folder made ready for the Hugging Face Hub, adapter only (`musilingo export`).

    musilingo export runs/instruct --out hub/musilingo-demo
    musilingo export runs/instruct --out hub/x --push-to-hub my-lab/musilingo-instruct

A trained MusiLingo adapter is ~4M parameters; the field publishes 15 GB repositories because
nothing packages the adapter with what is needed to use and trust it. The exported folder holds
    adapter.safetensors, adapter_config.json   the run's adapter, unchanged (re-read and checked)
    lora/                                      with LoRA: PEFT's adapter_config.json (its
                                               base_model_name_or_path a hub id or <local
                                               path>) and adapter_model.safetensors (peft loads
                                               it), checked first: only the recorded targets'
                                               LoRA matrices, of the recorded rank, finite
    config.yaml                                the training recipe as it ran, when there is one,
                                               its local paths shown as <local path>
    evaluations.json                           the scores recorded in the run (card.py)
    README.md                                  the model card: hub YAML metadata (licence left
                                               for the user), base models, data sets, recipe and
                                               steps, score tables with their protocol and the
                                               shuffled-audio control, intended use, limitations,
                                               and the three-line loading snippet
The export is loaded back like any run: `Predictor.load("hub/musilingo-demo")`.
`--push-to-hub` uploads with huggingface_hub and the token huggingface_hub finds (HF_TOKEN or
its login); the token is never read, written or printed by us.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import UserError
from ..files import temp_path
from ..models.lora import LORA_FOLDER, check_lora_file
from ..models.adapter_config import AdapterConfig
from .adapter_file import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_adapter
from .card import EVALUATIONS, RunCard, evaluations_markdown, shuffled_control
from ..markdown import md_code, md_fence, md_text
from .public import LOCAL, hub_datasets, hub_model, public_name, public_recipe


def model_card(card: RunCard) -> str:
    """README.md of the export: the hub's YAML metadata, then the card in prose and tables.
    Every value is escaped, local paths never appear, and the metadata names only the hub
    models and data sets the run really used (public.py)."""
    import yaml

    ident = card.identity()
    bases = [b for b in (hub_model(ident["llm"]), hub_model(ident["encoder"])) if b]
    datasets = hub_datasets(card.training)
    meta = {"license": None, "library_name": "musilingo", "pipeline_tag": "audio-text-to-text",
            "tags": ["music", "music-captioning", "music-question-answering", "musilingo",
                     "adapter"]}
    if bases:
        meta["base_model"] = bases
    if datasets:
        meta["datasets"] = datasets
    recipe = public_recipe(card.training)
    steps = ident["max_steps"] or "?"
    used = ", ".join(md_text(d) for d in ident["datasets"]) or "?"
    if ident["datasets"] and not datasets:
        used += " (the user's own files in these readers' formats)"
    controlled = any(shuffled_control(e) for e in card.evaluations)
    kind, lora = card.config.kind, card.config.lora is not None
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
        f"# MusiLingo adapter: {md_text(ident['stage'])}", "",
        f"An adapter of kind {md_code(kind)}{' with LoRA on the LLM' if lora else ''} "
        "that maps pooled features of a frozen music encoder into a frozen LLM's embedding space "
        "(MusiLingo: Deng et al., 2024), trained with the `musilingo` tool from a cache of the "
        f"encoder's features. Only the adapter{' and the LoRA weights' if lora else ''} are "
        "here; the encoder and the LLM are loaded from their own repositories.", "",
        "| | |", "|---|---|",
        f"| LLM (frozen) | {md_code(public_name(ident['llm']))} |",
        f"| music encoder (frozen) | {md_code(public_name(ident['encoder']))} (weights sha256 "
        f"{md_code(ident['encoder_weights'] or 'not recorded')}) |",
        f"| adapter | {adapter_text(card.config)} |",
        f"| prompt template | {md_code(ident['template'])} |",
        f"| training | {md_text(steps)} optimizer steps, lr {md_text(ident['lr'] or '?')}, "
        f"data sets {used}"
        + (", started from an earlier run's adapter" if ident["init_adapter"] else "") + " |",
    ]
    if ident["imported_from"]:
        lines.append(f"| imported from | {md_code(public_name(ident['imported_from']))} |")
    lines += ["", "## Use", "", "```python",
              "from musilingo.infer import Predictor",
              'p = Predictor.load("<this folder or repo snapshot>")',
              'print(p.caption("song.wav")); print(p.ask("song.wav", "What instrument is playing?"))',
              "```", "",
              "Or from the command line: `musilingo caption --run <folder> song.wav`, "
              "`musilingo serve --run <folder>`.", "",
              "## Evaluation", ""]
    lines += evaluations_markdown(card.evaluations)
    trust = ("compare against the shuffled-audio control above (the delta column) before "
             "trusting a score." if controlled else
             "no evaluation with the shuffled-audio control is recorded for this adapter, so "
             "nothing here shows that it listens: run `musilingo score --run <folder>` (the "
             "control is on by default) before trusting its output.")
    lines += ["", "## Intended use and limitations", "",
              "- Research on music understanding: captions and answers about short music clips "
              "(the training clips were 10-30 s).",
              "- n-gram metrics (BLEU, METEOR, ROUGE-L) and BERTScore reward fluent generic text "
              "and barely drop when the model hears the wrong audio; " + trust,
              "- The model inherits the frozen LLM's biases and can describe instruments, moods "
              "or lyrics that are not in the audio. Do not use its output as ground truth.",
              "- The licence field above is left for the publisher: it must respect the "
              "licences of the base models and of the training data.", ""]
    if recipe:
        text = yaml.safe_dump(recipe, sort_keys=False).strip()
        fence = md_fence(text)
        lines += ["## Training recipe", "", f"Local paths are shown as `{LOCAL}`.", "",
                  fence + "yaml", text, fence, ""]
    return "\n".join(lines)


def adapter_text(config: AdapterConfig) -> str:
    """What the adapter is, as its adapter_config.json records it: the kind's registry line
    with its widths, the layer aggregation, the window, and the LoRA."""
    layers, t = md_text(config.num_layers), md_text(config.t)
    over = (f"learned softmax weights over {layers} hidden states"
            if config.layer_aggregation == "learned" else f"the mean of {layers} hidden states")
    text = f"{config.describe()} over {over}, one token per {t} encoder frames"
    if config.lora is not None:
        text += (f"; LoRA on the LLM (rank {md_text(config.lora.r)}, alpha "
                 f"{md_text(config.lora.alpha)}, on {md_text(','.join(config.lora.targets))}) "
                 "in `lora/`, PEFT's format")
    return text


def export_run(run: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the export folder; returns it. The adapter is re-read (safetensors) first.

    Only the run's own files are copied: a file that is a symlink, or resolves outside the run
    folder, is refused (a `config.yaml` linked to a private file must not reach the Hub). The
    folder is written under a temporary name and renamed at the end, so a failed export leaves
    nothing half-written, and an --overwrite replaces the old folder only once the new one is
    whole."""
    card = RunCard.read(run)
    load_adapter(card.folder)  # refuses a damaged adapter before anything is written
    folder = card.folder.resolve()
    out = Path(out).expanduser()
    where = out.resolve()
    if where == folder or folder in where.parents:
        raise UserError(f"--out {out} is inside the run folder {card.folder}: export into a "
                        "folder of its own")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError(f"--out {out} is not empty: choose another folder or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: choose a folder")
    files = [name for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG, "config.yaml", EVALUATIONS)
             if os.path.lexists(card.folder / name)]
    if card.config.lora is not None:  # PEFT's own files, checked as caption checks them
        check_lora_file(card.folder, card.config.lora)
        files += [f"{LORA_FOLDER}/adapter_config.json", f"{LORA_FOLDER}/adapter_model.safetensors"]
    for name in files:
        _check_own_file(card.folder / name, folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name in files:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            if name == "config.yaml":  # published: the recipe without this machine's paths
                import yaml

                (tmp / name).write_text(yaml.safe_dump(public_recipe(card.training),
                                                       sort_keys=False), encoding="utf-8")
            elif name == f"{LORA_FOLDER}/adapter_config.json":  # PEFT names the base LLM
                (tmp / name).write_text(public_peft_config(card.folder / name, card.config.lora),
                                        encoding="utf-8")
            else:
                shutil.copy2(card.folder / name, tmp / name, follow_symlinks=False)
        (tmp / "README.md").write_text(model_card(card), encoding="utf-8")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_own_file(path: Path, folder: Path) -> None:
    """A UserError unless `path` is a regular file of the run folder itself."""
    if path.is_symlink() or not path.is_file():
        raise UserError(f"{path} is {'a symlink' if path.is_symlink() else 'not a regular file'}: "
                        "export copies only the run's own files; replace it with the file "
                        "itself")
    real = path.resolve()
    if folder not in real.parents:
        raise UserError(f"{path} resolves outside the run folder ({real}): export copies only "
                        "the run's own files")


def push_to_hub(folder: Path, repo: str) -> str:
    """Upload the export with huggingface_hub; one clear line when that cannot work here."""
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError
    except ImportError:
        raise UserError("--push-to-hub needs the huggingface_hub package (pip install "
                        "huggingface_hub)") from None
    api = HfApi()
    try:
        api.whoami()
    except LocalTokenNotFoundError:
        raise UserError("--push-to-hub: no Hugging Face token found; run `hf auth login` or set "
                        "HF_TOKEN, then re-run (the folder is already exported)") from None
    except (HfHubHTTPError, OSError) as exc:
        raise UserError(f"--push-to-hub: the Hub cannot be reached from here "
                        f"({type(exc).__name__}); push the exported folder later") from None
    try:
        api.create_repo(repo, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo,
                                 commit_message="musilingo export")
    except (HfHubHTTPError, OSError) as exc:
        raise UserError(f"--push-to-hub {repo}: upload failed ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160]})") from None
    return str(getattr(info, "commit_url", repo))


def public_peft_config(path: Path, lora) -> str:
    """PEFT's adapter_config.json for the run's LoRA (`lora`, what musilingo loads), made anew:
    the run's file may have been edited (IA3, DoRA, other targets) and is not what the weights
    were trained as. Its `base_model_name_or_path` becomes a hub id (a preset's or a snapshot's)
    or `<local path>`: the folder the run was trained from is this machine's."""
    import json

    from ..models.lora import peft_config_text, peft_lora_config

    try:
        peft = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} cannot be read as JSON ({type(exc).__name__}); restore the "
                        "run folder or re-train") from None
    if not isinstance(peft, dict):
        raise UserError(f"{path} is not a JSON object; restore the run folder or re-train")
    base = peft.get("base_model_name_or_path")
    base = (hub_model(base) or LOCAL) if isinstance(base, str) and base else None
    return peft_config_text(peft_lora_config(lora, base)) + "\n"
