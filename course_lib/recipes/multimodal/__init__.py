"""The multimodal chapter's experiments on scikit-learn's 8x8 digits.

Small models, each trained from scratch with ``course_lib.train.train``:

    vit.py            train_vit            images -> digit, [CLS] over 2x2 patches (Dosovitskiy et al., 2021)
    clip.py           train_clip           images <-> captions, contrastive          (Radford et al., 2021)
    captioning.py     train_captioner      image -> caption, cross-attention         (Vaswani et al., 2017)
    text_to_image.py  train_text_to_image  caption -> image tokens, one decoder      (Ramesh et al., 2021)
    vq.py             train_vq_vae         images <-> tokens, learned codebook       (van den Oord et al., 2017)
    flava.py          train_flava          contrastive + masked image/text modelling (Singh et al., 2022)

Each ``train_*`` returns ``(model, history, metrics)`` (``train_text_to_image`` also returns its
tokenizer). What takes more than a few seconds is trained ahead and shipped in
``recipes/checkpoints/multimodal_*.pt``; rebuild one with ``python -m course_lib.recipes.multimodal
<name>``. The book chapter ``multimodal`` and ``tests/test_results_multimodal.py`` call these
functions, so the numbers the page prints are the numbers the tests check.
"""
from . import checkpoints
from .captioning import caption_metrics, names_digit, train_captioner, write_captions
from .clip import (RECALL_KS, UNSEEN_TEMPLATE, chance_recall, clip_batch_loss, clip_config, encode_captions,
                   retrieval_recall, train_clip, with_eos, zero_shot_accuracy, zero_shot_prompts)
from .flava import FLAVAPretraining, flava_data, flava_loss, flava_metrics, mask_patches, mask_text, train_flava
from .common import IMAGE_SIZE, NUM_CLASSES, VIT_CONFIG, digits, predict, stack
from .text_to_image import (T2I_CODES, T2I_PATCH, fit_quantizer, generate_best_of, generate_images, pad_captions,
                            recognised, reconstruct, text_to_image_data, train_text_to_image)
from .vit import cls_attention, train_vit, vit_loss
from .vq import load_text_to_image, load_vq_vae, tokenizer_metrics, train_vq_vae
