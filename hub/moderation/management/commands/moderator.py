from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from hub.moderation.services import moderator_grant, moderator_revoke


class Command(BaseCommand):
    help = "Make a user a moderator (or, with --revoke, no longer one). Staff and superusers always are."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--revoke", action="store_true")

    def handle(self, *args, username: str, revoke: bool, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if revoke:
            moderator_revoke(user=user)
            self.stdout.write(f"{username} is no longer in the Moderators group")
        else:
            moderator_grant(user=user)
            self.stdout.write(f"{username} is now a moderator")
