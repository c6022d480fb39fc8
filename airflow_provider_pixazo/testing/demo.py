"""
``make demo``: run the ``pixazo_daily_content`` example end to end and print where the images are.

Starts the local emulator (or, with ``PIXAZO_API_KEY`` set, uses the real gateway), prepares a
throwaway Airflow home, runs ``airflow dags test pixazo_daily_content`` and lists the images written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DAG_ID = "pixazo_daily_content"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--airflow-home", type=Path, required=True)
    parser.add_argument("--dags-folder", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="local folder the images are written to")
    args = parser.parse_args(argv)

    output = args.output.resolve()
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    args.airflow_home.mkdir(parents=True, exist_ok=True)

    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(args.airflow_home.resolve()),
            "AIRFLOW__CORE__DAGS_FOLDER": str(args.dags_folder.resolve()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_VAR_PIXAZO_DESTINATION": output.as_uri(),
        }
    )
    airflow = str(Path(sys.executable).with_name("airflow"))

    emulator: subprocess.Popen[str] | None = None
    api_key = os.environ.get("PIXAZO_API_KEY")
    try:
        if api_key:
            print("PIXAZO_API_KEY is set: using the real Pixazo gateway (this costs money).")
            env["AIRFLOW_CONN_PIXAZO_DEFAULT"] = json.dumps({"conn_type": "pixazo", "password": api_key})
        else:
            emulator = subprocess.Popen(
                [
                    *(sys.executable, "-m", "airflow_provider_pixazo.testing.emulator", "--port", "0"),
                    *("--queued-seconds", "1", "--processing-seconds", "2"),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env={**env, "PIXAZO_EMULATOR_API_KEY": "pixazo-demo-key"},
            )
            assert emulator.stdout is not None
            url = emulator.stdout.readline().strip()
            if not url.startswith("http"):
                print("The emulator did not start.", file=sys.stderr)
                return 1
            print(f"Pixazo emulator running at {url}")
            env["AIRFLOW_CONN_PIXAZO_DEFAULT"] = json.dumps(
                {"conn_type": "pixazo", "host": url, "password": "pixazo-demo-key"}
            )

        _run([airflow, "db", "migrate"], env, quiet=True)
        _run([airflow, "pools", "set", "pixazo", "2", "Pixazo submits (caps spend and rate)"], env, quiet=True)
        print(f"Running `airflow dags test {DAG_ID}` ...")
        log_file = args.airflow_home / "dags-test.log"
        with log_file.open("w") as log:
            code = subprocess.call([airflow, "dags", "test", DAG_ID], env=env, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            print(f"`airflow dags test` failed (exit {code}); its log: {log_file}", file=sys.stderr)
            return code
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=10)

    images = sorted(p for p in output.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        print(f"The run succeeded but no image was written under {output}", file=sys.stderr)
        return 1
    print(f"\n{len(images)} image(s) written:")
    for image in images:
        print(f"  {image}  ({image.stat().st_size:,} bytes)")
    print(f"Provenance sidecars: {', '.join(str(p) for p in sorted(output.rglob('*.json')))}")
    print(f"Full Airflow log: {log_file}")
    return 0


def _run(command: list[str], env: dict[str, str], *, quiet: bool) -> None:
    result = subprocess.run(command, env=env, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout or "")
        sys.stderr.write(result.stderr or "")
        raise SystemExit(f"{' '.join(command[1:])} failed with exit {result.returncode}")


if __name__ == "__main__":
    raise SystemExit(main())
