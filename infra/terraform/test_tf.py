"""Tests of tf.py against the emulator with real Terraform: `python -m unittest infra/terraform/test_tf.py`
(run with infra/.venv/bin/python; `make test` runs it).

The case that matters: Terraform's AWS SDK retries the DynamoDB PutItem that takes the lock when the
first attempt's response is lost, although that attempt wrote the item; the retry then fails on it and
Terraform gives up with "Error acquiring the state lock", leaving its own lock behind. A slow emulator
does this now and then; here a proxy between Terraform and the emulator makes it happen on demand by
letting the first lock PutItem through and resetting the connection instead of passing the answer on.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
TF = HERE / "tf.py"
MOTO_GUARD = HERE.parent / "emulator" / "moto_guard.py"
PUT_ITEM = b"DynamoDB_20120810.PutItem"


class LockPutDroppingProxy:
    """A TCP proxy to the emulator that, `drops` times, forwards a DynamoDB PutItem request and then
    resets the client's connection instead of passing the emulator's answer back."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.drops_left = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        swallow = threading.Event()

        def back() -> None:
            while True:
                try:
                    data = upstream.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                if swallow.is_set():
                    # The request was processed; the answer is lost: reset, as a dropped connection
                    # does. SHUT_RD wakes the other thread's recv, so the close below is the last
                    # reference and sends the RST (a socket closed under a blocked recv stays open).
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    try:
                        client.shutdown(socket.SHUT_RD)
                    except OSError:
                        pass
                    break
                try:
                    client.sendall(data)
                except OSError:
                    break
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass

        threading.Thread(target=back, daemon=True).start()
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                return
            if not data:
                try:
                    upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if PUT_ITEM in data:
                with self.lock:
                    if self.drops_left > 0:
                        self.drops_left -= 1
                        self.dropped += 1
                        swallow.set()
            try:
                upstream.sendall(data)
            except OSError:
                return

    def arm(self, drops: int) -> None:
        with self.lock:
            self.drops_left = drops

    def close(self) -> None:
        self.server.close()


class TfPyRecoversFromItsOwnRetriedLock(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.moto = subprocess.Popen(
            [sys.executable, str(MOTO_GUARD), "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = cls.moto.stdout.readline().strip()
        if not line.startswith("LOCKREAPER_EMULATOR_READY "):
            cls.moto.kill()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        cls.endpoint = line.split()[1]
        cls.moto_port = int(cls.endpoint.rsplit(":", 1)[1])
        session = dict(
            endpoint_url=cls.endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
        )
        cls.dynamodb = boto3.client("dynamodb", **session)
        cls.s3 = boto3.client("s3", **session)
        cls.tmp = tempfile.TemporaryDirectory(prefix="lockreaper-tf-test-")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.moto.stdin.close()  # the guard stops the emulator on EOF
        cls.moto.wait(timeout=30)
        cls.tmp.cleanup()

    def tf(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, str(TF), *args], capture_output=True, text=True, timeout=300)
        if check and done.returncode != 0:
            self.fail(f"tf.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def workdir(self, proxy: LockPutDroppingProxy) -> tuple[Path, str, str]:
        name = uuid.uuid4().hex[:8]
        table, bucket = f"locks-{name}", f"state-{name}"
        self.dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.s3.create_bucket(Bucket=bucket)
        d = Path(self.tmp.name) / name
        endpoint = f"http://127.0.0.1:{proxy.port}"
        self.tf("init", "--dir", str(d), "--endpoint", endpoint, "--bucket", bucket, "--key", "app/terraform.tfstate",
                "--table", table, "--lockfile")
        return d, table, bucket

    def lock_item(self, table: str, bucket: str) -> dict | None:
        item = self.dynamodb.get_item(TableName=table, Key={"LockID": {"S": f"{bucket}/app/terraform.tfstate"}})
        return item.get("Item")

    def test_apply_releases_only_its_own_leftover_and_applies_again(self) -> None:
        proxy = LockPutDroppingProxy(self.moto_port)
        self.addCleanup(proxy.close)
        d, table, bucket = self.workdir(proxy)
        proxy.arm(1)
        done = self.tf("apply", "--dir", str(d))
        self.assertEqual(proxy.dropped, 1)
        self.assertIn("Terraform failed on the lock it had itself just written", done.stderr)
        self.assertIn("retried requests: DynamoDB/PutItem attempt 2", done.stderr)
        self.assertIn("Apply complete!", done.stdout)
        self.assertIsNone(self.lock_item(table, bucket), "no lock left behind")

    def test_hold_reports_the_lock_terraform_actually_holds(self) -> None:
        proxy = LockPutDroppingProxy(self.moto_port)
        self.addCleanup(proxy.close)
        d, table, bucket = self.workdir(proxy)
        proxy.arm(1)
        report = json.loads(self.tf("hold", "--dir", str(d), "--seconds", "5").stdout.strip().splitlines()[-1])
        self.addCleanup(lambda: subprocess.run(["kill", "-s", "KILL", "--", f"-{report['pid']}"], check=False))
        self.assertEqual(proxy.dropped, 1)
        self.assertIn("releasing that lock", (d / "hold.log").read_text(errors="replace"))
        item = self.lock_item(table, bucket)
        self.assertIsNotNone(item)
        self.assertEqual(json.loads(item["Info"]["S"])["ID"], report["lock_id"])
        self.assertIn("Locked remote state", (d / "terraform-debug.log").read_text(errors="replace"))

    def test_a_lock_held_by_someone_else_is_never_released(self) -> None:
        proxy = LockPutDroppingProxy(self.moto_port)
        self.addCleanup(proxy.close)
        d, table, bucket = self.workdir(proxy)
        stuck = json.loads(self.tf("stuck", "--dir", str(d)).stdout.strip().splitlines()[-1])
        done = self.tf("apply", "--dir", str(d), "--lock-timeout", "0s", check=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("Error acquiring the state lock", done.stdout + done.stderr)
        self.assertNotIn("releasing that lock", done.stderr)
        self.assertEqual(json.loads(self.lock_item(table, bucket)["Info"]["S"])["ID"], stuck["lock_id"])

    def test_a_held_apply_stays_live_until_released_then_releases_its_own_lock(self) -> None:
        proxy = LockPutDroppingProxy(self.moto_port)  # not armed: passes everything through
        self.addCleanup(proxy.close)
        d, table, bucket = self.workdir(proxy)
        # 40 steps of 3 s: two minutes of apply unless released; Terraform persists state at most every 20 s.
        report = json.loads(
            self.tf("hold", "--dir", str(d), "--seconds", "3", "--steps", "40", "--until-released").stdout.strip().splitlines()[-1]
        )
        self.addCleanup(lambda: subprocess.run(["kill", "-s", "KILL", "--", f"-{report['pid']}"], check=False))
        taken = time.time()
        deadline = time.monotonic() + 60
        written = None
        while written is None and time.monotonic() < deadline:
            try:
                modified = self.s3.head_object(Bucket=bucket, Key="app/terraform.tfstate")["LastModified"].timestamp()
                written = modified if modified > taken - 1 else None
            except self.s3.exceptions.ClientError:
                pass
            time.sleep(0.5)
        self.assertIsNotNone(written, "the live apply writes state while it holds the lock")
        item = self.lock_item(table, bucket)
        self.assertIsNotNone(item, "still locked after writing state")
        self.assertEqual(json.loads(item["Info"]["S"])["ID"], report["lock_id"])
        released = json.loads(self.tf("release", "--dir", str(d)).stdout.strip().splitlines()[-1])
        self.assertLess(time.time() - taken, 100, "release ended the apply before its 40 steps would have")
        self.assertTrue(released["released"])
        self.assertIsNone(self.lock_item(table, bucket), "Terraform released its own lock")
        with self.assertRaises(self.s3.exceptions.ClientError):
            self.s3.head_object(Bucket=bucket, Key="app/terraform.tfstate.tflock")
        self.assertIn("Apply complete!", (d / "hold.log").read_text(errors="replace"))

    def test_release_without_a_held_apply_is_a_clear_error(self) -> None:
        proxy = LockPutDroppingProxy(self.moto_port)
        self.addCleanup(proxy.close)
        d, _, _ = self.workdir(proxy)
        done = self.tf("release", "--dir", str(d), check=False)
        self.assertEqual(done.returncode, 2)
        self.assertIn("no `hold --until-released` apply was started", done.stderr)


if __name__ == "__main__":
    unittest.main()
