import os
import re

import pytest

from open4m.atomic import atomic_write, write_atomic, write_text_atomic


def test_writes_replace_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    write_text_atomic(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_refuses_to_overwrite_when_asked(tmp_path):
    target = write_text_atomic(tmp_path / "keep.txt", "mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_text_atomic(target, "theirs", overwrite=False)
    assert target.read_text() == "mine"


def test_failed_write_keeps_the_old_file(tmp_path):
    target = write_atomic(tmp_path / "f.bin", b"old")

    def boom(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_files_get_the_usual_mode_whatever_the_writer_creates(tmp_path):
    import os

    from safetensors.torch import save_file

    import torch
    from open4m.atomic import atomic_write

    path = atomic_write(tmp_path / "w.safetensors", lambda tmp: save_file({"a": torch.zeros(1)}, str(tmp)))
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask  # safetensors alone would leave 0600


def test_a_kill_mid_write_leaves_the_old_file_and_a_clean_folder(tmp_path):
    """The temporary file is fsynced and renamed; one left by a killed process is hidden and ignored."""
    from open4m.atomic import staged_file

    target = write_atomic(tmp_path / "f.bin", b"old")
    with pytest.raises(KeyboardInterrupt):
        with staged_file(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_writes_are_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    import open4m.atomic as atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: events.append(("fsync", os.path.basename(os.readlink(
        f"/proc/self/fd/{fd}")))) or real_fsync(fd))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: events.append(("replace", os.path.basename(b)))
                        or real_replace(a, b))
    write_atomic(tmp_path / "f.bin", b"x")
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    assert events[0][1].endswith(".tmp") and events[2][1] == tmp_path.name  # the temp file, then its folder


def test_commit_dir_publishes_a_whole_folder(tmp_path):
    from open4m.atomic import commit_dir

    tmp = tmp_path / ".tmp-x"
    (tmp / "sub").mkdir(parents=True)
    (tmp / "sub" / "a.bin").write_bytes(b"a")
    final = commit_dir(tmp, tmp_path / "x")
    assert (final / "sub" / "a.bin").read_bytes() == b"a" and not tmp.exists()


def test_save_image_picks_the_format_from_the_suffix(tmp_path):
    from PIL import Image

    from open4m.atomic import save_image
    from open4m.errors import ConfigError

    save_image(Image.new("RGB", (2, 2), "red"), tmp_path / "a.jpg")
    assert Image.open(tmp_path / "a.jpg").format == "JPEG"
    with pytest.raises(ConfigError, match="suffix"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "a.nope")


# -- check_output: the --overwrite rule ---------------------------------------------------------------
def test_check_output_refuses_what_it_must(tmp_path):
    from open4m.atomic import check_output
    from open4m.errors import ConfigError, OutputExists

    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "new" / "deeper", folder=True, overwrite=False) == tmp_path / "new" / "deeper"
    assert check_output(tmp_path / "empty", folder=True, overwrite=False)
    with pytest.raises(OutputExists, match="--overwrite"):
        check_output(user, folder=True, overwrite=False)
    assert check_output(user, folder=True, overwrite=True)
    assert check_output(user, folder=True, overwrite=False, ours=lambda p: (p / "notes.txt").is_file())
    with pytest.raises(OutputExists, match="file where a folder is expected"):
        check_output(user / "notes.txt", folder=True, overwrite=True)
    with pytest.raises(OutputExists, match="folder where a file is expected"):
        check_output(user, folder=False, overwrite=True)
    with pytest.raises(OutputExists, match="--overwrite"):
        check_output(user / "notes.txt", folder=False, overwrite=False)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output(user / "notes.txt" / "out", folder=True, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep"


def test_check_output_refuses_a_read_only_folder(tmp_path):
    from open4m.atomic import check_output
    from open4m.errors import ConfigError

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        with pytest.raises(ConfigError, match="not writable"):
            check_output(locked / "out", folder=True, overwrite=True)
    finally:
        locked.chmod(0o700)


# -- every write of src/ goes through open4m.atomic ------------------------------------------------------
# Direct writes the grep below finds and why each is safe. Keys: (file under src/open4m, text of the line).
ALLOWED_DIRECT_WRITES = {
    ("train/monitor.py", 'self._file = open(run_dir / METRICS, "a", encoding="utf-8")'):
        "metrics.jsonl is an append-only log: a kill tears at most its last line, which read_metrics drops; "
        "the file is rewritten atomically at each (re)start",
    ("train/checkpointing.py", 'save_file(_rng_tensors(info.device), str(tmp / f"rng-rank{info.rank}.safetensors"))'):
        "inside the temporary checkpoint folder that commit_dir fsyncs and renames into place",
    ("train/checkpointing.py", 'save_file(tensors, str(tmp / "model.safetensors"), metadata=metadata or None)'):
        "inside the temporary checkpoint folder (commit_dir)",
    ("train/checkpointing.py", 'save_file(opt_tensors, str(tmp / "optimizer.safetensors"), metadata=opt_meta)'):
        "inside the temporary checkpoint folder (commit_dir)",
    ("train/checkpointing.py", 'save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / "ema.safetensors"),'):
        "inside the temporary checkpoint folder (commit_dir)",
    ("train/checkpointing.py", '(tmp / "state.json").write_text(json.dumps({**state, "step": step, "world": info.world}, indent=1))'):
        "inside the temporary checkpoint folder (commit_dir)",
    ("train/sharded.py", "dcp.save(unshared(tensors), storage_writer=writer, no_dist=not info.enabled)"):
        "each rank's DCP shards, inside the temporary checkpoint folder that commit_dir fsyncs and renames",
    ("train/sharded.py", "(folder / META).write_text(json.dumps(meta, indent=1))"):
        "inside the temporary checkpoint folder (commit_dir)",
    ("train/checkpointing.py", "os.replace(checkpoint, doomed)"):
        "renames an old checkpoint out of the way before deleting it (writes nothing)",
    ("train/monitor.py", 'self.tb = _writer_class()(str(run_dir / "tb"), purge_step=start_step + 1 if start_step else None)'):
        "TensorBoard's own event files (append-only logs of a third-party writer, optional)",
    ("cli/commands/generate.py", "written = out.save(args.out)"): "GenerationOutput.save writes through save_image/atomic_write",
    ("cli/commands/index.py", "index.save(args.out)"): "GalleryIndex.save writes through atomic_write",
}

_WRITE_CALL = re.compile(
    r"""\.write_text\(|\.write_bytes\(|\.save\(|\btorch\.save\(|\bnp\.save[z]?\(|"""
    r"""(?<![.\w])save_file\(|\bjson\.dump\(|\bpickle\.dump\(|\bcv2\.imwrite\(|\btarfile\.open\(.*["']w|TarWriter\(|"""
    r"""ShardWriter\(|\bshutil\.(copy|copyfile|copy2|copytree|move)\(|\burlretrieve\(|\bos\.(replace|rename)\(|"""
    r"""\.rename\(|\.touch\(|\.replace\(\s*[A-Za-z_]*(path|dst|target)|SummaryWriter\(|_writer_class\(\)\(""")
_OPEN_FOR_WRITING = re.compile(r"""\bopen\([^)]*["'](w|a|x|r\+)b?\+?["']""")  # matched with the strings kept
# writes into an in-memory buffer, or into the temporary file atomic_write / staged_file hands to a writer
_STAGED = re.compile(r"""(\(|\s)(buf|tmp|str\(tmp\))(\s*[,)])|fileobj=buf|lambda tmp""")


def _code_lines(path):
    """(code, line) per line of the file: `code` with strings and comments blanked (a docstring naming
    `img.save(` is no write), `line` without its comment."""
    import io
    import tokenize

    source = path.read_text(encoding="utf-8")
    code = [list(line) for line in source.splitlines()]
    text = [list(line) for line in source.splitlines()]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            (r0, c0), (r1, c1) = tok.start, tok.end
            for r in range(r0, r1 + 1):
                for c in range(c0 if r == r0 else 0, c1 if r == r1 else len(code[r - 1])):
                    code[r - 1][c] = " "
                    if tok.type == tokenize.COMMENT:
                        text[r - 1][c] = " "
    return [("".join(c), "".join(t)) for c, t in zip(code, text)]


def test_every_write_goes_through_open4m_atomic():
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "open4m"
    found, seen_allowed = [], set()
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel == "atomic.py":
            continue
        for number, (code, line) in enumerate(_code_lines(path), 1):
            writes = _WRITE_CALL.search(code) or ("open(" in code and _OPEN_FOR_WRITING.search(line))
            if not writes or code.lstrip().startswith("def "):
                continue
            key = (rel, line.strip())
            if key in ALLOWED_DIRECT_WRITES:
                seen_allowed.add(key)
            elif not _STAGED.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, ("direct writes outside open4m.atomic (use atomic_write / write_atomic / save_image / "
                       "staged_file, or allow-list them with the reason):\n" + "\n".join(found))
    stale = set(ALLOWED_DIRECT_WRITES) - seen_allowed
    assert not stale, f"allow-listed writes no longer in src/ (drop them from the list): {sorted(stale)}"


def test_a_killed_writers_temp_file_is_swept_by_the_next_write(tmp_path):
    """`.NAME.PID-RANDOM.tmp` of a process that is gone goes; a running writer's (here: ours) stays."""
    import subprocess
    import sys

    from open4m.atomic import sweep_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".f[1].bin.{dead}-abcdef12.tmp"
    live = tmp_path / f".f[1].bin.{os.getpid()}-abcdef12.tmp"
    other = tmp_path / f".g.bin.{dead}-abcdef12.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"half")
    write_atomic(tmp_path / "f[1].bin", b"new")
    assert not stale.exists() and live.exists() and other.exists()  # only the same file's, only the dead's
    assert sweep_stale_temps(tmp_path / "g.bin") == [other]


def test_writing_many_files_into_one_folder_lists_it_once(tmp_path, monkeypatch):
    """Listing the folder at every write made n writes cost n^2 (a 48000-scene token folder took hours)."""
    import open4m.atomic as atomic

    listed = []
    scandir = os.scandir
    monkeypatch.setattr(atomic.os, "scandir", lambda path: listed.append(path) or scandir(path))
    for i in range(50):
        write_atomic(tmp_path / "tokens" / f"scene_{i:03d}.npy", b"x")
    assert listed == [tmp_path / "tokens"] and len(list((tmp_path / "tokens").iterdir())) == 50
