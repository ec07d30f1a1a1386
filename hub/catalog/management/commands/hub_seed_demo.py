from django.core.management.base import BaseCommand

from hub.demo.content import DEMO_PASSWORD, DEMO_USERNAME, demo_seed


class Command(BaseCommand):
    help = "Create the demo user and a few tiny demo models and a recipe that merges them (idempotent)."

    def handle(self, *args, **opts):
        summary = demo_seed()
        for model in summary.created:
            self.stdout.write(f"created demo model {model.pk}: {model.name}")
        if summary.recipe is not None:
            self.stdout.write(f"demo recipe {summary.recipe.pk}: {summary.recipe.title}")
        for job in summary.render_jobs:
            state = "queued for the worker" if job.status == "queued" else job.status
            self.stdout.write(f"demo preview render {job.pk} for version {job.model_version_id}: {state}")
        self.stdout.write(f"demo user: {DEMO_USERNAME} / {DEMO_PASSWORD}")
