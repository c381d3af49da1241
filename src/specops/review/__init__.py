"""What a pull request's reviewer sees: one comment with the plan and, when the change feeds training,
the model's change (specops.review.candidate trains and measures it; specops.review.comment writes it)."""
from specops.review.candidate import PipelineReview, Plots, Review, review

__all__ = ["PipelineReview", "Plots", "Review", "review"]
