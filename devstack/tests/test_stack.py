"""The whole stack started from Python, as the end-to-end and fault tests start it."""

from __future__ import annotations

import os
import signal
import uuid

import httpx
import pytest

from ticketing_devstack.probes import wait_until_ready
from ticketing_devstack.servers import free_port
from ticketing_devstack.stack import Stack, StackError


class TestStack:
    def test_processes_are_known_before_the_start(self) -> None:
        stack = Stack()
        try:
            processes = stack.processes
            assert {"nats", "redis", "localstripe", "auth", "gateway"} <= set(processes)
            assert processes["gateway"].url == stack.gateway_url
            assert stack.proc is None
        finally:
            stack.stop()

    def test_signed_up_user_is_current_through_the_gateway_and_stop_leaves_nothing(
        self,
    ) -> None:
        stack = Stack()
        with stack, httpx.Client(base_url=stack.gateway_url, trust_env=False) as http:
            email = f"{uuid.uuid4().hex[:10]}@example.com"
            signup = http.post("/api/users/signup", json={"email": email, "password": "pass1234"})
            assert signup.status_code == 201, signup.text
            current = http.get("/api/users/currentuser").json()["currentUser"]
            assert current["email"] == email
            assert set(stack.pids) == set(stack.processes)

        assert stack.leftovers() == []
        assert not stack.build().run_dir.exists()

    def test_one_process_dying_stops_the_whole_stack(self) -> None:
        with Stack() as stack:
            assert stack.proc is not None
            os.kill(stack.pids["auth"], signal.SIGKILL)

            stack.proc.wait(timeout=30)

            assert stack.leftovers() == [], stack.logs()[-3000:]

    def test_not_ready_while_one_service_cannot_start(self) -> None:
        # auth keeps retrying a database that is not there, so it never serves /readyz.
        nowhere = f"mongodb://127.0.0.1:{free_port()}/auth?serverSelectionTimeoutMS=300"
        # A real database needs a real key (the dev key runs only on memory://).
        stack = Stack({"AUTH_MONGO_URI": nowhere, "JWT_KEY": "k" * 40})
        stack.start()
        try:
            others = [spec for name, spec in stack.processes.items() if name != "auth"]
            wait_until_ready(others, timeout=90)

            with pytest.raises(StackError, match="not ready"):
                stack.wait_ready(timeout=2)
        finally:
            stack.stop()
        assert stack.leftovers() == []
