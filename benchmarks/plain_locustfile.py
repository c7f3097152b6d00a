"""Plain Locust, for comparison with the harness: the same FastHttpUser request loop that
the harness's capacity profile runs (GET / back to back), with nothing of postdeploy."""

from locust import FastHttpUser, task


class PlainVisitor(FastHttpUser):
    @task
    def landing(self) -> None:
        self.client.get("/", name="/")
