"""The official Python server SDK (`pusher`) and the Python client `pysher` against the real binary."""

import json
import os
import re
import subprocess
import threading
import time
import unittest

import pusher
import pysher

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SINEW_BIN", os.path.join(ROOT, "target", "debug", "sinew"))
APP_ID, KEY, SECRET = "61", "py-key", "py-secret"


class SinewProcess:
    def __init__(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SINEW_")}
        env.update(SINEW_HOST="127.0.0.1", SINEW_PORT="0", SINEW_METRICS_PORT="0", SINEW_LOG="warn",
                   SINEW_APP_ID=APP_ID, SINEW_APP_KEY=KEY, SINEW_APP_SECRET=SECRET)
        self.proc = subprocess.Popen([BIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 15
        self.port = None
        while time.time() < deadline and self.port is None:
            line = self.proc.stdout.readline()
            m = re.search(r"listening on \S+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("sinew did not start")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def wait_for(predicate, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class PythonClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = SinewProcess()
        cls.sdk = pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, host="127.0.0.1", port=cls.server.port, ssl=False)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def connect(self, **kwargs):
        client = pysher.Pusher(KEY, custom_host="127.0.0.1", port=self.server.port, secure=False, secret=SECRET, **kwargs)
        connected = threading.Event()
        client.connection.bind("pusher:connection_established", lambda _data: connected.set())
        client.connect()
        self.assertTrue(connected.wait(5), "pysher connected")
        self.addCleanup(client.disconnect, 2)
        return client

    def test_public_private_and_presence_with_sdk_events(self):
        client = self.connect(user_data={"user_id": "py-user", "user_info": {"name": "Py"}})
        got = []
        public = client.subscribe("py-news")
        public.bind("created", lambda data: got.append(("public", data)))
        private = client.subscribe("private-py")
        private.bind("created", lambda data: got.append(("private", data)))
        client.subscribe("presence-py")
        self.assertTrue(wait_for(lambda: self.sdk.channel_info("presence-py", ["user_count"]).get("user_count") == 1))
        self.assertTrue(wait_for(lambda: "private-py" in self.sdk.channels_info(prefix_filter="private-")["channels"]))
        self.assertEqual(self.sdk.trigger(["py-news", "private-py"], "created", {"id": 1}), {})
        self.assertTrue(wait_for(lambda: len(got) == 2), got)
        self.assertEqual(sorted(k for k, _ in got), ["private", "public"])
        self.assertEqual(json.loads(got[0][1]), {"id": 1})
        self.assertEqual(self.sdk.users_info("presence-py"), {"users": [{"id": "py-user"}]})
        info = self.sdk.channels_info(prefix_filter="presence-", attributes=["user_count"])
        self.assertEqual(info, {"channels": {"presence-py": {"user_count": 1}}})
        self.assertEqual(self.sdk.channel_info("py-news", ["subscription_count"]), {"occupied": True, "subscription_count": 1})
        self.assertEqual(self.sdk.trigger_batch([{"channel": "py-news", "name": "created", "data": {"id": 2}}]), {})
        self.assertTrue(wait_for(lambda: len(got) == 3), got)

    def test_user_endpoints_and_auth_helpers(self):
        self.assertEqual(self.sdk.terminate_user_connections("nobody"), {})
        self.assertEqual(self.sdk.send_to_user("nobody", "note", {"x": 1}), {})
        auth = self.sdk.authenticate(channel="private-x", socket_id="1.2")
        self.assertTrue(auth["auth"].startswith(KEY + ":"))

    def test_bad_credentials_are_refused(self):
        wrong = pusher.Pusher(app_id=APP_ID, key=KEY, secret="wrong", host="127.0.0.1", port=self.server.port, ssl=False)
        with self.assertRaises(pusher.errors.PusherBadAuth):
            wrong.trigger("py-news", "e", {})
        with self.assertRaises(pusher.errors.PusherBadAuth):
            wrong.channels_info()


if __name__ == "__main__":
    unittest.main()
