"""Model families assembled from ``course_lib.nn``: one family per file.

Hugging Face names appear only in ``convert/``, one converter per family. Every model has
a ``from_hf`` classmethod that loads the matching ``transformers`` model, and
:func:`from_hf` picks the class from the HF model's own.
"""
from .convert import from_hf
from .clip import CLIP, CLIPConfig, CLIPTextConfig, clip_loss
from .decoder import Decoder, DecoderConfig, lm_loss, with_control_codes
from .encoder import (
    Encoder,
    EncoderConfig,
    EncoderForMaskedLM,
    EncoderForReplacedTokenDetection,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
    SentenceEncoder,
    mean_pool,
)
from .flava import FLAVA, FLAVAConfig, FLAVAEncoderConfig
from .seq2seq import EncoderDecoder, EncoderDecoderConfig
from .captioner import Captioner, CaptionerConfig
from .text_to_image import PatchQuantizer, TextToImage, TextToImageConfig
from .vit import VisionTransformer, VisionTransformerConfig
from .vq_vae import VQVAE, VectorQuantizer, VQVAEConfig, code_perplexity
from .xlnet import XLNet, XLNetConfig

__all__ = [
    "from_hf",
    "Encoder", "EncoderConfig", "EncoderForMaskedLM", "EncoderForSequenceClassification",
    "EncoderForTokenClassification", "EncoderForReplacedTokenDetection", "SentenceEncoder", "mean_pool",
    "XLNet", "XLNetConfig",
    "Decoder", "DecoderConfig", "lm_loss", "with_control_codes",
    "EncoderDecoder", "EncoderDecoderConfig",
    "VisionTransformer", "VisionTransformerConfig",
    "CLIP", "CLIPConfig", "CLIPTextConfig", "clip_loss",
    "FLAVA", "FLAVAConfig", "FLAVAEncoderConfig",
    "TextToImage", "TextToImageConfig", "PatchQuantizer",
    "VQVAE", "VQVAEConfig", "VectorQuantizer", "code_perplexity",
    "Captioner", "CaptionerConfig",
]
