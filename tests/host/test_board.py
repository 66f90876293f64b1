"""The virtual board, driven by the real mpremote exactly as a USB board would be."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.board import VirtualBoard, send_ctl

ROOT = Path(__file__).resolve().parents[2]


def mpremote(pty, *args, timeout=30, check=True):
    p = subprocess.run([sys.executable, "-m", "mpremote", "connect", str(pty), *args],
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("mpremote %s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout, p.stderr))
    return p.stdout


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture
def board(tmp_path):
    with VirtualBoard(tmp_path / "pty", tmp_path / "flash", ctl_path=tmp_path / "ctl",
                      speed=100, seed=7) as b:
        yield b


def test_exec_cp_ls_run(board, tmp_path):
    (tmp_path / "hello.txt").write_text("hi there")
    (tmp_path / "script.py").write_text("print('ran', 6 * 7)")
    out = mpremote(board.pty_path, "exec", "print(1+1)", "+", "fs", "cp", str(tmp_path / "hello.txt"),
                   ":hello.txt", "+", "fs", "mkdir", ":lib", "+", "fs", "ls", ":",
                   "+", "run", str(tmp_path / "script.py"),
                   "+", "exec", "print(open('/hello.txt').read())")
    assert "2\n" in out and "hello.txt" in out and "lib" in out
    assert "ran 42" in out and "hi there" in out
    # The board's "/" is the flash directory, never the host's root.
    assert (tmp_path / "flash" / "hello.txt").read_text() == "hi there"
    assert (tmp_path / "flash" / "lib").is_dir()
    out = mpremote(board.pty_path, "fs", "rm", ":hello.txt", "+", "eval", "1+2")
    assert "3" in out and not (tmp_path / "flash" / "hello.txt").exists()


def test_soft_reset_then_exec(board):
    out = mpremote(board.pty_path, "exec", "x = 5", "+", "soft-reset", "+",
                   "exec", "print('x' in globals(), 'after')", "+",
                   "exec", "import machine; print('cause', machine.reset_cause())")
    assert "False after" in out  # a fresh interpreter, as after a real soft reset
    assert "cause 5" in out      # SOFT_RESET


def test_main_runs_at_boot_but_not_after_raw_soft_reset(board, tmp_path):
    flash = tmp_path / "flash"
    (flash / "main.py").write_text("open('/count.txt', 'a').write('x')\n")
    (flash / "boot.py").write_text("open('/boot.txt', 'a').write('b')\n")
    assert board.reset().startswith("ok")
    assert wait_for(lambda: (flash / "count.txt").exists())
    # mpremote soft-resets in the raw REPL on connect: like a board, main.py stays quiet.
    mpremote(board.pty_path, "exec", "print(1)", "+", "soft-reset", "+", "exec", "print(2)")
    assert (flash / "count.txt").read_text() == "x"
    assert (flash / "boot.txt").read_text().startswith("bb")  # boot.py runs on every reset
    # `mpremote reset` calls machine.reset(): a hard reset runs main.py again.
    mpremote(board.pty_path, "reset")
    assert wait_for(lambda: (flash / "count.txt").read_text() == "xx")
    out = mpremote(board.pty_path, "resume", "exec", "import machine; print(machine.reset_cause())")
    assert out.strip() == "2"  # HARD_RESET


def test_ctrl_c_interrupts_looping_main(board, tmp_path):
    flash = tmp_path / "flash"
    (flash / "main.py").write_text("import time\nopen('/started', 'w').close()\n"
                                   "while True:\n    time.sleep_ms(20)\n")
    board.reset()
    assert wait_for(lambda: (flash / "started").exists())
    out = mpremote(board.pty_path, "resume", "exec", "print('interrupted ok')")
    assert "interrupted ok" in out


def test_power_cut_keeps_files(board, tmp_path):
    mpremote(board.pty_path, "exec", "f = open('/kept.txt', 'w'); f.write('data'); f.close()")
    boots = board.boots
    assert board.power_cut(0.3) == "ok powercut"
    # Connecting while the power is off works once it is back (input is held meanwhile).
    out = mpremote(board.pty_path, "resume", "exec",
                   "import machine; print(open('/kept.txt').read(), machine.reset_cause())")
    assert out.split() == ["data", "1"]  # PWRON_RESET
    assert board.boots == boots + 1


def test_sigint_between_runs_is_a_quiet_respawn(board):
    # Under load a Ctrl-C can reach the unix port between two executions, where SIGINT
    # still kills it; a board would just show its REPL, so the relay respawns the port
    # without counting a boot or changing the reset cause the firmware reads.
    mpremote(board.pty_path, "exec", "print(1)")
    boots = board.boots
    assert board.wait_ready(5)
    pid = board._proc.pid
    os.kill(pid, signal.SIGINT)
    assert wait_for(lambda: board._proc is not None and board._proc.pid != pid)
    out = mpremote(board.pty_path, "resume", "exec", "import machine; print(machine.reset_cause())")
    assert out.strip() == "5"  # still the SOFT_RESET of the last mpremote connect
    assert board.boots == boots


def test_deepsleep_restarts_with_main(board, tmp_path):
    flash = tmp_path / "flash"
    (flash / "main.py").write_text("import machine\nopen('/wake.txt', 'a').write(str(machine.reset_cause()))\n")
    mpremote(board.pty_path, "exec", "import machine; machine.deepsleep(10)", check=False)
    assert wait_for(lambda: (flash / "wake.txt").exists() and "4" in (flash / "wake.txt").read_text())


def test_ctl_socket_world_commands_and_sim_json(board, tmp_path):
    flash = tmp_path / "flash"
    assert (flash / "sim.json").read_text() == '{"state": "world.bin", "speed": 100, "seed": 7}'
    ctl = str(tmp_path / "ctl")
    assert send_ctl(ctl, "button") == "ok button"
    assert send_ctl(ctl, "refill") == "ok refill"
    assert board.command("button") == "ok button"
    assert (flash / "ctl").read_text() == "button\nrefill\nbutton\n"
    assert send_ctl(ctl, "status").startswith("ok pid=")
    assert send_ctl(ctl, "bogus").startswith("error")
    assert send_ctl(ctl, "powercut 0") == "ok powercut"
    assert "7" in mpremote(board.pty_path, "eval", "3+4")


def test_two_boards_at_once(tmp_path):
    with VirtualBoard(tmp_path / "a", tmp_path / "fa") as a, VirtualBoard(tmp_path / "b", tmp_path / "fb") as b:
        mpremote(a.pty_path, "exec", "open('/who', 'w').write('a')")
        mpremote(b.pty_path, "exec", "open('/who', 'w').write('b')")
        assert (tmp_path / "fa" / "who").read_text() == "a"
        assert (tmp_path / "fb" / "who").read_text() == "b"


def test_cli_ready_line_and_clean_sigterm(tmp_path):
    pty = tmp_path / "cli-pty"
    code = "import sys; from host_tools.board import main_board; sys.exit(main_board(sys.argv[1:]))"
    p = subprocess.Popen([sys.executable, "-c", code, "--pty", str(pty), "--flash", str(tmp_path / "f"),
                          "--heap", "48K", "--ctl", str(tmp_path / "c")],
                         stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert p.stdout.readline().strip() == "virtual board ready: %s" % pty
        assert "48K" in mpremote(pty, "exec", "import os; print(os.getenv('VBOARD_HEAP'))")
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert not os.path.lexists(pty) and not os.path.exists(tmp_path / "c")


@pytest.mark.parametrize("args, says", [
    (["--pty", "{tmp}/no/such/dir/pty", "--flash", "{tmp}/f"], "No such file or directory: {tmp}/no/such/dir/pty"),
    (["--pty", "{tmp}/p", "--flash", "{tmp}/f", "--heap", "lots"], "--heap must be a size such as 192K"),
    (["--pty", "{tmp}/p", "--flash", "{tmp}/f", "--baud", "5"], "--baud must be 300..4000000"),
])
def test_cli_bad_arguments_get_one_line(tmp_path, args, says):
    code = "import sys; from host_tools.board import main_board; sys.exit(main_board(sys.argv[1:]))"
    p = subprocess.run([sys.executable, "-c", code, *[a.format(tmp=tmp_path) for a in args]],
                       capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert p.returncode == 2 and says.format(tmp=tmp_path) in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "ready" not in p.stdout
