"""Every model the course covers, with its ``course_lib`` class and the test that checks it.

One row per model: the name, the family, the ``transformers`` classes that
:func:`course_lib.models.from_hf` converts, our classes, the tests that compare the two, and
the book chapter. The "Choosing a model" page draws its table from :data:`CATALOG`, and
``tests/test_model_table.py`` checks that it agrees with :data:`~.FAMILIES` and that every
test it names exists, so the page cannot promise a check that is not there.

A model with no ``transformers`` class (GPT-3 and GPT-4: no released weights; DALL·E: not in
``transformers``) says in ``note`` what stands in for it.
"""
from __future__ import annotations

from dataclasses import dataclass

FAMILY_ORDER = ("encoder", "decoder", "encoder-decoder", "multimodal")


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str  # one of FAMILY_ORDER
    hf_classes: tuple[str, ...]  # what from_hf converts; () when there is none
    classes: tuple[str, ...]  # in course_lib.models
    tests: tuple[str, ...]  # "tests/test_x.py::test_name"
    chapter: str  # book/<chapter>.md
    in_article: bool = True  # named in the source article's table of model families
    note: str = ""  # what the tests compare against, when it is not a transformers class


def _t(file: str, *names: str) -> tuple[str, ...]:
    return tuple(f"tests/{file}::{name}" for name in names)


CATALOG: tuple[CatalogEntry, ...] = (
    # Encoders.
    CatalogEntry("BERT", "encoder",
                 ("BertModel", "BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification"),
                 ("Encoder", "EncoderForMaskedLM", "EncoderForSequenceClassification",
                  "EncoderForTokenClassification"),
                 _t("test_models_encoder.py", "test_matches_hugging_face_bert"), "encoder"),
    CatalogEntry("RoBERTa", "encoder", ("RobertaModel", "RobertaForMaskedLM"), ("Encoder", "EncoderForMaskedLM"),
                 _t("test_models_roberta.py", "test_matches_hugging_face_roberta_with_padding"), "encoder"),
    CatalogEntry("XLNet", "encoder", ("XLNetLMHeadModel",), ("XLNet",),
                 _t("test_models_xlnet.py", "test_content_stream_logits_match_hugging_face",
                    "test_two_stream_logits_for_targets_match_hugging_face"), "encoder"),
    CatalogEntry("ELECTRA", "encoder", ("ElectraForPreTraining", "ElectraForMaskedLM"),
                 ("EncoderForReplacedTokenDetection", "EncoderForMaskedLM"),
                 _t("test_models_electra.py", "test_matches_hugging_face_electra"), "encoder"),
    CatalogEntry("MiniLM (all-MiniLM-L6-v2)", "encoder", (), ("SentenceEncoder",),
                 _t("test_models_encoder.py", "test_minilm_real_weights_match_sentence_transformers"), "encoder",
                 in_article=False, note="real weights, against sentence-transformers (a BertModel inside)"),
    # Decoders.
    CatalogEntry("GPT-1", "decoder", ("OpenAIGPTLMHeadModel",), ("Decoder",),
                 _t("test_models_gpt1.py", "test_logits_match_hugging_face"), "decoder"),
    CatalogEntry("GPT-2", "decoder", ("GPT2LMHeadModel",), ("Decoder",),
                 _t("test_models_decoder.py", "test_logits_match_hugging_face",
                    "test_greedy_generation_matches_hugging_face"), "decoder"),
    CatalogEntry("GPT-3", "decoder", (), ("Decoder",), (), "decoder",
                 note="no released weights; its published architecture is GPT-2's, larger, "
                      "with some sparse-attention layers we do not build"),
    CatalogEntry("GPT-4", "decoder", (), (), (), "decoder", note="architecture not published"),
    CatalogEntry("CTRL", "decoder", ("CTRLLMHeadModel",), ("Decoder",),
                 _t("test_models_ctrl.py", "test_logits_match_hugging_face"), "decoder"),
    CatalogEntry("OPT", "decoder", ("OPTForCausalLM",), ("Decoder",),
                 _t("test_models_opt.py", "test_logits_match_hugging_face"), "decoder"),
    CatalogEntry("Llama", "decoder", ("LlamaForCausalLM",), ("Decoder",),
                 _t("test_models_decoder.py", "test_logits_match_hugging_face"), "decoder", in_article=False),
    # Encoder-decoders.
    CatalogEntry("T5", "encoder-decoder", ("T5ForConditionalGeneration",), ("EncoderDecoder",),
                 _t("test_models_t5.py", "test_logits_match_hugging_face",
                    "test_greedy_generation_matches_hugging_face"), "seq2seq"),
    CatalogEntry("BART", "encoder-decoder", ("BartForConditionalGeneration",), ("EncoderDecoder",),
                 _t("test_models_seq2seq.py", "test_random_bart_matches_hugging_face"), "seq2seq"),
    CatalogEntry("mT5", "encoder-decoder", ("MT5ForConditionalGeneration",), ("EncoderDecoder",),
                 _t("test_models_t5.py", "test_logits_match_hugging_face"), "seq2seq"),
    CatalogEntry("Pegasus", "encoder-decoder", ("PegasusForConditionalGeneration",), ("EncoderDecoder",),
                 _t("test_models_pegasus.py", "test_logits_match_hugging_face"), "seq2seq"),
    # Multimodal.
    CatalogEntry("ViT", "multimodal", ("ViTModel", "ViTForImageClassification"), ("VisionTransformer",),
                 _t("test_models_vit.py", "test_hidden_states_match_vit_model",
                    "test_logits_match_vit_for_image_classification"), "multimodal", in_article=False),
    CatalogEntry("CLIP", "multimodal", ("CLIPModel",), ("CLIP",),
                 _t("test_models_clip.py", "test_matches_hugging_face_clip"), "multimodal"),
    CatalogEntry("DALL·E", "multimodal", (), ("TextToImage", "PatchQuantizer"),
                 _t("test_models_text_to_image.py", "test_joint_sequence_layout"), "multimodal",
                 note="not in transformers; a small DALL·E-style model, tested on its own definition"),
    CatalogEntry("FLAVA", "multimodal", ("FlavaModel",), ("FLAVA",),
                 _t("test_models_flava.py", "test_matches_hugging_face_flava_with_padding",
                    "test_similarity_matches_hugging_face_contrastive_logits"), "multimodal"),
)
