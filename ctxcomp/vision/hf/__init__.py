"""Hugging Face integration: vision encoders (with ToMe/DyMU merging inside them) and
vision-language models whose visual tokens are pruned before (or, for FastV, inside) the
language model. Importing this package imports torch and transformers."""

from .encoders import MergedTokens, VisionEncoder
from .patch import TokenMerging, cls_attention, encoder_blocks

__all__ = ["MergedTokens", "TokenMerging", "VisionEncoder", "cls_attention", "encoder_blocks"]
