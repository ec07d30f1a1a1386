from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "hub.moderation"
    label = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        user_logged_in.connect(_remember_nav_flag, dispatch_uid="moderation-nav-flag")


def _remember_nav_flag(sender, request, user, **kwargs) -> None:
    # Sign-in already costs queries; the header's moderator link then costs none.
    from hub.moderation.selectors import is_moderator, nav_flag_set

    nav_flag_set(user_id=user.pk, value=is_moderator(user))
