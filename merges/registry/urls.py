"""Registry routes, included under /api/ by hub.api.urls (namespace "api")."""
from django.urls import path

from merges.registry import api

urlpatterns = [
    path("v1/recipes", api.RecipeListView.as_view(), name="recipes"),
    path("v1/recipes/validate", api.RecipeValidateView.as_view(), name="recipes-validate"),
    path("v1/recipes/import", api.RecipeImportView.as_view(), name="recipes-import"),
    path("v1/recipes/<int:recipe_id>", api.RecipeDetailView.as_view(), name="recipe"),
    path("v1/recipes/<int:recipe_id>/versions", api.RecipeVersionsView.as_view(), name="recipe-versions"),
    path(
        "v1/recipes/<int:recipe_id>/versions/<int:number>",
        api.RecipeVersionDetailView.as_view(),
        name="recipe-version",
    ),
    path("v1/recipes/<int:recipe_id>/fork", api.RecipeForkView.as_view(), name="recipe-fork"),
    path("v1/recipes/<int:recipe_id>/diff", api.RecipeDiffView.as_view(), name="recipe-diff"),
    path("v1/recipes/<int:recipe_id>/run", api.RecipeRunView.as_view(), name="recipe-run"),
    path("v1/recipes/<int:recipe_id>/jobs", api.RecipeJobsView.as_view(), name="recipe-jobs"),
    path("v1/merge-jobs/<int:job_id>", api.MergeJobView.as_view(), name="merge-job"),
    path("v1/merge-jobs/<int:job_id>/cancel", api.MergeJobCancelView.as_view(), name="merge-job-cancel"),
    path("v1/model-versions/<int:version_id>/lineage", api.LineageView.as_view(), name="model-version-lineage"),
]
