#!/usr/bin/env python
"""Build pytest-jallm's bundled sample benchmarks and its two tiny Japanese LMs.

Everything here is offline and deterministic:

1. writes the sample benchmarks (original, template-generated Japanese text)
   ``samples/data/sample_mc/{train,test}.jsonl``  (JCommonsenseQA format)
   ``samples/data/sample_nli/{train,test}.jsonl`` (JNLI format);
2. trains a byte-level BPE tokenizer on the rendered training prompts;
3. trains a 2-layer LlamaForCausalLM on the train splits of both tasks with
   llm-jp-eval v1 style 0-shot prompts (see :func:`training_prompt`), loss on
   the answer + EOS only;
4. saves two checkpoints of the same run: ``tiny-ja-good`` (final step) and
   ``tiny-ja-weak`` (an early checkpoint, deliberately weaker, picked as the
   evaluated step whose test accuracy is closest to 50 % on both tasks), so a
   regression gate visibly fails with flipped items.

Usage::

    python scripts/train_tiny_model.py --out models [--steps 800]

About 80 s on 2 idle CPU cores (torch 2.13). Re-runs on the same machine and
torch version give byte-identical data and checkpoints; another CPU or torch
version may round differently and pick a different weak step (the script then
still prints the accuracies it got, and warns if the weak one is off target).

The sample MC items keep each fact's answer at one choice position (see
:func:`make_mc` for why); the tiny model therefore answers from the question,
not from the choice texts.

Tokenization contract (what the plugin must reproduce): the prompt is
``tokenizer(prompt)`` -- the tokenizer adds **no** BOS/EOS (it has no BOS
token and no post-processor), so ``add_special_tokens`` True/False give the
same ids; the training target is ``tokenizer(answer).input_ids + [eos]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "samples" / "data"

# --------------------------------------------------------------------------
# Prompt format (llm-jp-eval v1, 0-shot). Byte-for-byte what the plugin renders.
# --------------------------------------------------------------------------

PREFIX = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"

MC_INSTRUCTION = (
    "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。"
    "なお、回答は選択肢の番号（例：0）でお答えください。"
)
NLI_INSTRUCTION = (
    "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。"
    "それ以外には何も含めないことを厳守してください。\n\n制約：\n"
    "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合はentailmentと出力\n"
    "- 前提と仮説が両立しえない場合はcontradictionと出力\n"
    "- そのいずれでもない場合はneutralと出力"
)
NLI_LABELS = ("entailment", "contradiction", "neutral")
MAX_NEW_TOKENS = {"mc": 3, "nli": 5}
WEAK_BAND = (0.30, 0.70)  # wanted test accuracy of the weak checkpoint, per task

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


def task_input(task: str, row: dict) -> str:
    if task == "mc":
        return (
            "質問：" + row["question"] + "\n選択肢："
            + ",".join(f"{i}." + row[f"choice{i}"] for i in range(5))
        )
    if task == "nli":
        return "前提：" + row["sentence1"] + "\n仮説：" + row["sentence2"]
    raise ValueError(f"unknown task {task!r}")


def training_prompt(task: str, row: dict) -> str:
    """The exact prompt string the tiny models were trained on ("mc" or "nli")."""
    instruction = {"mc": MC_INSTRUCTION, "nli": NLI_INSTRUCTION}.get(task)
    if instruction is None:
        raise ValueError(f"unknown task {task!r}")
    return (
        PREFIX + "\n\n### 指示:\n" + instruction
        + "\n\n### 入力:\n" + task_input(task, row) + "\n\n### 応答:\n"
    )


def gold_answer(task: str, row: dict) -> str:
    return str(row["label"]) if task == "mc" else row["label"]


# --------------------------------------------------------------------------
# Sample benchmark: multiple choice (JCommonsenseQA format)
# --------------------------------------------------------------------------

KIND_POOL = ["果物", "野菜", "動物", "鳥", "魚", "乗り物", "家具", "楽器", "花", "飲み物", "文房具"]
KIND_FACTS = {
    "りんご": "果物", "みかん": "果物", "ぶどう": "果物", "バナナ": "果物", "もも": "果物",
    "にんじん": "野菜", "キャベツ": "野菜", "だいこん": "野菜", "たまねぎ": "野菜",
    "犬": "動物", "ねこ": "動物", "ぞう": "動物", "きりん": "動物",
    "すずめ": "鳥", "はと": "鳥", "つばめ": "鳥",
    "まぐろ": "魚", "さんま": "魚", "たい": "魚",
    "バス": "乗り物", "電車": "乗り物", "自転車": "乗り物",
    "机": "家具", "たんす": "家具", "本棚": "家具",
    "ピアノ": "楽器", "ギター": "楽器", "太鼓": "楽器",
    "ひまわり": "花", "チューリップ": "花", "バラ": "花",
    "牛乳": "飲み物", "お茶": "飲み物", "ジュース": "飲み物",
    "鉛筆": "文房具", "消しゴム": "文房具", "定規": "文房具",
}
KIND_PHRASINGS = ["{x}は何の一種ですか？", "{x}はどの仲間ですか？", "{x}を分類すると何になりますか？"]

TOOL_FACTS = [
    ("雨の日に外で使うものは？", "傘"),
    ("字を書くときに使うものは？", "鉛筆"),
    ("紙を切るときに使うものは？", "はさみ"),
    ("今の時刻を知るために見るものは？", "時計"),
    ("歯をみがくときに使うものは？", "歯ブラシ"),
    ("スープを飲むときに使うものは？", "スプーン"),
    ("お風呂のあとで体をふくものは？", "タオル"),
    ("手紙を出すときに封筒にはるものは？", "切手"),
    ("家のドアを開けるときに使うものは？", "鍵"),
    ("部屋のほこりを吸い取る道具は？", "掃除機"),
    ("食べ物を冷やしておく電気製品は？", "冷蔵庫"),
    ("寒い日に手にはめるものは？", "手袋"),
    ("寒い日に首に巻くものは？", "マフラー"),
    ("小さな文字をはっきり見るためにかけるものは？", "眼鏡"),
    ("お金を入れて持ち歩くものは？", "財布"),
    ("知らない町で道を調べるときに見るものは？", "地図"),
]
PLACE_FACTS = [
    ("本を借りに行く場所は？", "図書館"),
    ("けがや病気を診てもらう場所は？", "病院"),
    ("電車に乗るために行く場所は？", "駅"),
    ("お金を預ける場所は？", "銀行"),
    ("子どもが授業を受ける場所は？", "学校"),
    ("大きなスクリーンで映画を見る場所は？", "映画館"),
    ("小包を送りに行く場所は？", "郵便局"),
    ("夏に泳ぎに行く場所は？", "プール"),
    ("飛行機に乗るために行く場所は？", "空港"),
    ("ライオンやパンダを見に行く場所は？", "動物園"),
    ("家で料理を作る場所は？", "台所"),
    ("髪を切ってもらう場所は？", "美容院"),
    ("食パンを買いに行く店は？", "パン屋"),
    ("子どもがすべり台で遊ぶ場所は？", "公園"),
]
SOUND_FACTS = [
    ("「ワンワン」と鳴く動物は？", "犬"),
    ("「ニャー」と鳴く動物は？", "ねこ"),
    ("「モー」と鳴く動物は？", "牛"),
    ("「ヒヒーン」と鳴く動物は？", "馬"),
    ("「コケコッコー」と鳴く動物は？", "にわとり"),
    ("「ケロケロ」と鳴く動物は？", "かえる"),
    ("「メェー」と鳴く動物は？", "羊"),
    ("「カーカー」と鳴く動物は？", "からす"),
    ("「ブーブー」と鳴く動物は？", "ぶた"),
    ("「チューチュー」と鳴く動物は？", "ねずみ"),
]
COLOR_FACTS = [
    ("よく晴れた日の空の色は？", "青"),
    ("降ったばかりの雪の色は？", "白"),
    ("熟したバナナの皮の色は？", "黄色"),
    ("信号で「止まれ」を表す色は？", "赤"),
    ("からすの羽の色は？", "黒"),
    ("夏の木の葉の色は？", "緑"),
    ("チョコレートの色は？", "茶色"),
    ("桜の花の色は？", "ピンク"),
    ("なすの皮の色は？", "紫"),
]
OPPOSITE_PAIRS = [
    ("大きい", "小さい"), ("高い", "低い"), ("暑い", "寒い"), ("長い", "短い"),
    ("重い", "軽い"), ("明るい", "暗い"), ("速い", "遅い"), ("新しい", "古い"),
    ("広い", "狭い"), ("強い", "弱い"), ("多い", "少ない"), ("太い", "細い"),
]
SEASON_FACTS = [
    ("花見をする季節は？", "春"),
    ("海水浴をする季節は？", "夏"),
    ("紅葉狩りをする季節は？", "秋"),
    ("雪だるまを作る季節は？", "冬"),
]
BODY_FACTS = [
    ("花のにおいをかぐときに使う体の部分は？", "鼻"),
    ("音楽を聞くときに使う体の部分は？", "耳"),
    ("景色を見るときに使う体の部分は？", "目"),
    ("ボールを蹴るときに使う体の部分は？", "足"),
    ("食べ物をかむときに使う体の部分は？", "歯"),
    ("拍手をするときに使う体の部分は？", "手"),
]
JOB_FACTS = [
    ("病院で患者を診察する人は？", "医者"),
    ("火事の火を消す人は？", "消防士"),
    ("学校で授業をする人は？", "先生"),
    ("レストランで料理を作る人は？", "料理人"),
    ("交番で町を守る人は？", "警察官"),
    ("飛行機を操縦する人は？", "パイロット"),
    ("木で家を建てる人は？", "大工"),
    ("畑で野菜を育てる人は？", "農家"),
    ("バスを運転する人は？", "運転手"),
]


def mc_facts() -> list[tuple[list[str], str, list[str]]]:
    """(question phrasings, answer, distractor pool) for every fact."""
    facts: list[tuple[list[str], str, list[str]]] = []
    for x, kind in KIND_FACTS.items():
        facts.append(([p.format(x=x) for p in KIND_PHRASINGS], kind, KIND_POOL))
    for group in (TOOL_FACTS, PLACE_FACTS, SOUND_FACTS, COLOR_FACTS, BODY_FACTS, JOB_FACTS):
        pool = [a for _, a in group]
        for q, a in group:
            facts.append(([q], a, pool))
    season_pool = ["春", "夏", "秋", "冬", "梅雨"]
    for q, a in SEASON_FACTS:
        facts.append(([q], a, season_pool))
    adjectives = [w for pair in OPPOSITE_PAIRS for w in pair]
    for a, b in OPPOSITE_PAIRS:
        for src, dst in ((a, b), (b, a)):
            qs = [f"「{src}」の反対の意味の言葉は？", f"「{src}」と反対の意味を持つ言葉はどれですか？"]
            facts.append((qs, dst, [w for w in adjectives if w != src]))
    return facts


def _mc_item(rng: random.Random, phrasings, answer, pool, label) -> tuple[str, list[str], int]:
    question = rng.choice(phrasings)
    distractors = rng.sample([w for w in pool if w != answer], 4)
    choices = distractors[:label] + [answer] + distractors[label:]
    return question, choices, label


def make_mc(n_train_per_fact: int = 4, n_test: int = 40, seed: int = 1234):
    """Template-generated JCommonsenseQA-style items.

    Every fact keeps its answer at one fixed choice position (positions are
    balanced over facts), while distractors, their order and the question's
    phrasing vary. A 2-layer, 1M-parameter model cannot learn multiple-choice
    symbol binding from a few hundred items (measured: it memorises instead),
    but it does learn "this question -> this position", and so generalises to
    test items with new distractor sets / orders and phrasings.
    """
    rng = random.Random(seed)
    facts = mc_facts()
    order = list(range(len(facts)))
    rng.shuffle(order)
    position = {fi: rank % 5 for rank, fi in enumerate(order)}
    train, seen, used_phrasings = [], set(), {}
    for fi, (phrasings, answer, pool) in enumerate(facts):
        made = 0
        while made < n_train_per_fact:
            q, choices, label = _mc_item(rng, phrasings, answer, pool, position[fi])
            key = (q, tuple(choices))
            if key in seen:
                continue
            seen.add(key)
            used_phrasings.setdefault(fi, set()).add(q)
            train.append((q, choices, label))
            made += 1
    rng.shuffle(train)
    # Test: n_test distinct facts, labels balanced over the 5 positions, each
    # with a fresh distractor set / order never seen verbatim in train.
    per_label = n_test // 5
    test_facts = []
    for label in range(5):
        cands = [fi for fi in order if position[fi] == label]
        test_facts += rng.sample(cands, per_label)
    rng.shuffle(test_facts)
    test = []
    for fi in test_facts:
        _, answer, pool = facts[fi]
        phrasings = sorted(used_phrasings[fi])
        while True:
            q, choices, label = _mc_item(rng, phrasings, answer, pool, position[fi])
            if (q, tuple(choices)) not in seen:
                seen.add((q, tuple(choices)))
                test.append((q, choices, label))
                break

    def rows(items, start):
        out = []
        for i, (q, choices, label) in enumerate(items):
            row = {"q_id": start + i, "question": q}
            row.update({f"choice{j}": c for j, c in enumerate(choices)})
            row["label"] = label
            out.append(row)
        return out

    return rows(train, 0), rows(test, 10000)


# --------------------------------------------------------------------------
# Sample benchmark: NLI (JNLI format)
# --------------------------------------------------------------------------

# (subject, hypernym, contrasting subject)
NLI_SUBJECTS = [
    ("男性", "人", "女性"), ("女性", "人", "男性"),
    ("男の子", "子ども", "女の子"), ("女の子", "子ども", "男の子"),
    ("おじいさん", "人", "おばあさん"), ("おばあさん", "人", "おじいさん"),
]
# (object phrase, verb in te-form, places where it makes sense)
NLI_ACTIONS = [
    ("犬を", "散歩させて", ["公園", "川沿い", "住宅街"]),
    ("本を", "読んで", ["図書館", "部屋", "公園", "電車の中"]),
    ("ボールを", "蹴って", ["公園", "校庭", "河原"]),
    ("写真を", "撮って", ["公園", "海辺", "駅前", "山の上"]),
    ("ピアノを", "弾いて", ["部屋", "ホール", "教室"]),
    ("ご飯を", "食べて", ["台所", "食堂", "部屋"]),
    ("絵を", "描いて", ["部屋", "公園", "教室", "海辺"]),
    ("花に水を", "やって", ["庭", "公園", "ベランダ"]),
    ("料理を", "作って", ["台所", "レストラン"]),
    ("洗濯物を", "干して", ["ベランダ", "庭"]),
]
NLI_ALL_PLACES = sorted({p for _, _, ps in NLI_ACTIONS for p in ps})
NLI_EXTRAS = ["朝早く", "友達と一緒に", "楽しそうに", "一人で", "急いで", "雨の中"]
NLI_RELATIONS = ["家族", "友達"]


def _nli_pair(rng: random.Random, label: str) -> tuple[str, str, str]:
    subj, hyper, contrast = rng.choice(NLI_SUBJECTS)
    obj, verb, places = rng.choice(NLI_ACTIONS)
    place = rng.choice(places)
    s1 = f"{subj}が{place}で{obj}{verb}いる。"
    kind = rng.randrange(4)
    if label == "entailment":
        s2 = [
            f"{subj}が{obj}{verb}いる。",
            f"{hyper}が{place}で{obj}{verb}いる。",
            f"{subj}が{place}にいる。",
            f"{hyper}が{obj}{verb}いる。",
        ][kind]
    elif label == "contradiction":
        other = rng.choice([p for p in NLI_ALL_PLACES if p != place])
        s2 = [
            f"{subj}は{obj}{verb}いない。",
            f"{contrast}が{place}で{obj}{verb}いる。",
            f"{subj}が{place}で眠っている。",
            f"{subj}が{other}で{obj}{verb}いる。",
        ][kind]
    else:
        extra = rng.choice(NLI_EXTRAS)
        s2 = [
            f"{subj}が{extra}{place}で{obj}{verb}いる。",
            f"{subj}は毎日{obj}{verb}いる。",
            f"{subj}は{place}に初めて来た。",
            f"{subj}の{rng.choice(NLI_RELATIONS)}が近くにいる。",
        ][kind]
    return s1, s2, label


def make_nli(n_train: int = 360, n_test: int = 30, seed: int = 4321):
    rng = random.Random(seed)

    def draw(n, seen):
        items = []
        while len(items) < n:
            label = NLI_LABELS[len(items) % 3]
            s1, s2, label = _nli_pair(rng, label)
            if (s1, s2) in seen:
                continue
            seen.add((s1, s2))
            items.append((s1, s2, label))
        rng.shuffle(items)
        return items

    seen: set = set()
    train = draw(n_train, seen)
    test = draw(n_test, seen)  # `seen` already holds every train pair
    def to_rows(items: list, tag: str) -> list[dict]:
        return [
            {"sentence_pair_id": f"{tag}-{i:04d}", "sentence1": a, "sentence2": b, "label": lab}
            for i, (a, b, lab) in enumerate(items)
        ]

    return to_rows(train, "train"), to_rows(test, "test")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_benchmarks(data_dir: Path, mc_per_fact: int = 4) -> dict[str, dict[str, list[dict]]]:
    mc_train, mc_test = make_mc(n_train_per_fact=mc_per_fact)
    nli_train, nli_test = make_nli()
    data = {"mc": {"train": mc_train, "test": mc_test}, "nli": {"train": nli_train, "test": nli_test}}
    for task, dirname in (("mc", "sample_mc"), ("nli", "sample_nli")):
        for split, rows in data[task].items():
            write_jsonl(data_dir / dirname / f"{split}.jsonl", rows)
    return data


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # No normaliser: NFKC would turn "：？（）" into ":?()" and change the prompts.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Deliberately no post-processor: no BOS/EOS is ever added automatically.
    from transformers import PreTrainedTokenizerFast

    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


# --------------------------------------------------------------------------
# Training / evaluation
# --------------------------------------------------------------------------

def _portable_tokenizer_config(d: Path) -> None:
    """Name the generic fast-tokenizer class (transformers 4.x and 5.x both load
    it; 5.x writes its own alias "TokenizersBackend") and inline the chat
    template for versions that do not read chat_template.jinja."""
    p = d / "tokenizer_config.json"
    cfg = json.loads(p.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["add_bos_token"] = False
    cfg["add_eos_token"] = False
    p.write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def encode_examples(tok, data):
    eos = tok.eos_token_id
    out = []
    for task in ("mc", "nli"):
        for row in data[task]["train"]:
            p = tok(training_prompt(task, row), add_special_tokens=False).input_ids
            a = tok(gold_answer(task, row), add_special_tokens=False).input_ids + [eos]
            out.append((task, p, a))
    return out


def common_prefix(seqs):
    first = seqs[0]
    n = min(len(x) for x in seqs)
    for i in range(n):
        if any(x[i] != first[i] for x in seqs):
            return first[:i]
    return first[:n]


def batch_loss(model, examples, prefix, pad_id):
    """Causal-LM loss on answer+EOS for examples that all start with `prefix`.

    The shared instruction prefix is run once (batch 1) and its KV cache is
    repeated over the batch; this is the same computation as running every
    full sequence (right-padded, positions from 0) but about twice as cheap.
    """
    import torch

    Lp = len(prefix)
    B = len(examples)
    rest = [(p[Lp:], a) for p, a in examples]
    L = max(len(p) + len(a) for p, a in rest)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    labels = torch.full((B, L), -100, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for i, (p, a) in enumerate(rest):
        seq = p + a
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p) : len(seq)] = torch.tensor(a)
        mask[i, : len(seq)] = 1
    pre = model(input_ids=torch.tensor([prefix]), use_cache=True)
    cache = pre.past_key_values
    cache.batch_repeat_interleave(B)
    full_mask = torch.cat([torch.ones((B, Lp), dtype=torch.long), mask], dim=1)
    pos = torch.arange(Lp, Lp + L).unsqueeze(0).expand(B, L)
    logits = model(input_ids=ids, attention_mask=full_mask, position_ids=pos,
                   past_key_values=cache, use_cache=True).logits
    # shift: logits at t predict token t+1; the first answer token is predicted
    # from the last prompt position, which is always inside `rest` (Lp < len(p)).
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(shift_logits.float(), shift_labels,
                                             ignore_index=-100, reduction="sum")


def generate_answers(model, tok, prompts, max_new_tokens, batch_size=64):
    """Greedy, left-padded, batched; answer = decoded text up to EOS, stripped."""
    import torch

    tok.padding_side = "left"
    answers = []
    for s in range(0, len(prompts), batch_size):
        chunk = prompts[s : s + batch_size]
        enc = tok(chunk, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            )
        for row in out[:, enc.input_ids.shape[1]:]:
            ids = row.tolist()
            if tok.eos_token_id in ids:
                ids = ids[: ids.index(tok.eos_token_id)]
            answers.append(tok.decode(ids, skip_special_tokens=True).strip())
    return answers


def evaluate(model, tok, data, batch_size=64):
    was_training = model.training
    model.eval()
    acc, preds = {}, {}
    for task in ("mc", "nli"):
        rows = data[task]["test"]
        prompts = [training_prompt(task, r) for r in rows]
        got = generate_answers(model, tok, prompts, MAX_NEW_TOKENS[task], batch_size)
        gold = [gold_answer(task, r) for r in rows]
        acc[task] = sum(g == p for g, p in zip(gold, got, strict=True)) / len(rows)
        preds[task] = got
    if was_training:
        model.train()
    return acc, preds


MODEL_CARD = """---
license: {license}
language: ja
library_name: transformers
pipeline_tag: text-generation
---

# {name}

A deliberately tiny Japanese causal LM bundled with **pytest-jallm** as a test
fixture. It is *not* a useful language model: it only answers the project's own
sample benchmarks (`samples/data/sample_mc`, `samples/data/sample_nli`)
in the exact prompt format it was trained on.

{role}

## Test-split scores (greedy; max_new_tokens 3 for MC, 5 for NLI; exact match)

| task | items | accuracy |
|------|------:|---------:|
| sample_mc (JCommonsenseQA format) | {n_mc} | {acc_mc:.4f} ({hit_mc}/{n_mc}) |
| sample_nli (JNLI format) | {n_nli} | {acc_nli:.4f} ({hit_nli}/{n_nli}) |

The answer is the generated text up to EOS, stripped. Batched left-padded
generation gives the same answers as unbatched generation (checked by the
training script after reloading the saved files).

## How it was made

`python scripts/train_tiny_model.py --out models --steps {steps}` (offline,
deterministic, CPU, {threads} threads; the whole run trained in {train_s:.0f} s here).

* Tokenizer: byte-level BPE (`tokenizers`) trained on the rendered training
  prompts, {vocab} tokens, digits split one per token, no normaliser.
  Special tokens: EOS `{eos}` (id {eos_id}), PAD `{pad}` (id {pad_id}).
  **No BOS token and no post-processor**: `tokenizer(prompt)` gives the same ids
  with or without `add_special_tokens`, and that is exactly what training used.
* Model: `LlamaForCausalLM`, hidden {hidden}, {layers} layers, {heads} heads,
  intermediate {ff}, tied embeddings, {params:,} parameters, float32.
* Data: the train splits of both sample tasks ({n_train} examples). Prompt =
  llm-jp-eval v1 0-shot format (`training_prompt()` in the script):
  `PREFIX + "\\n\\n### 指示:\\n" + instruction + "\\n\\n### 入力:\\n" + input + "\\n\\n### 応答:\\n"`;
  target = answer (`"0"`..`"4"`, or `entailment`/`contradiction`/`neutral`,
  each a single token) followed by EOS; loss on the target tokens only.
  AdamW, lr {lr}, batch {batch}, warmup + cosine.
* This checkpoint: step {step} of {steps}.

## Known limits

* In `sample_mc` every fact keeps its answer at one choice position (balanced
  over facts); distractors, their order and the phrasing vary. A model this
  small does not learn multiple-choice symbol binding from a few hundred items
  (it was tried: it memorises instead), but it does learn "question -> answer
  position". So it answers from the question, not from the choice texts:
  shuffling the choices breaks it, which makes it a good fixture for
  prompt-robustness checks and a bad model of anything else.
* Any change to the prompt (instruction text, separators, few-shot examples,
  a BOS token) takes it off its training distribution.

## Chat template

`{chat_template}`: it concatenates the message contents with nothing added, so
a single user message holding the rendered prompt gives exactly the raw prompt.

## License

{license_name}, the same as the pytest-jallm project. The training and test data
are original text written for this project.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "models")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=160)
    ap.add_argument("--ff", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--no-curriculum", dest="curriculum", action="store_false",
                    help="fixed task mix from the first step (then no step may have both tasks half-learnt)")
    ap.add_argument("--mc-per-fact", type=int, default=4)
    ap.add_argument("--eval-all", action="store_true",
                    help="also evaluate after --weak-max-step (diagnostics)")
    ap.add_argument("--nli-frac", type=float, default=0.5,
                    help="share of each batch drawn from the NLI train split")
    ap.add_argument("--weak-max-step", type=int, default=None,
                    help="latest step considered for the weak checkpoint (default: steps // 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--license", default="apache-2.0")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    t0 = time.time()
    data = build_benchmarks(args.data_dir, args.mc_per_fact)
    print(f"data: mc train {len(data['mc']['train'])} test {len(data['mc']['test'])}; "
          f"nli train {len(data['nli']['train'])} test {len(data['nli']['test'])}")

    corpus = []
    for task in ("mc", "nli"):
        for row in data[task]["train"]:
            corpus.append(training_prompt(task, row) + gold_answer(task, row))
    tok = train_tokenizer(corpus, args.vocab)
    print(f"tokenizer: {len(tok)} tokens")
    for ans in [str(i) for i in range(5)] + list(NLI_LABELS):
        ids = tok(ans, add_special_tokens=False).input_ids
        assert len(ids) == 1, f"answer {ans!r} is not a single token: {ids}"

    examples = encode_examples(tok, data)
    lens = [len(p) + len(a) for _, p, a in examples]
    prefixes = {}
    for task in ("mc", "nli"):
        prompts = [p for t, p, _ in examples if t == task]
        pre = common_prefix(prompts)
        prefixes[task] = pre[: min(len(p) for p in prompts) - 1]
    print("shared prompt prefix tokens:", {t: len(p) for t, p in prefixes.items()})
    print(f"examples: {len(examples)}, tokens/example min {min(lens)} max {max(lens)}")

    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=args.hidden,
        intermediate_size=args.ff,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, args.steps // 20)

    def lr_at(step):  # step is 1-based
        if step <= warmup:
            return args.lr * step / warmup
        prog = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))

    weak_max = args.weak_max_step if args.weak_max_step is not None else args.steps // 2
    weak = None  # (score, step, acc, state_dict)
    order_rng = random.Random(args.seed)
    pools = {t: [i for i, e in enumerate(examples) if e[0] == t] for t in ("mc", "nli")}
    streams: dict[str, list[int]] = {"mc": [], "nli": []}
    n_nli = round(args.batch * args.nli_frac)
    per_step = {"nli": n_nli, "mc": args.batch - n_nli}

    def draw(task, n):  # epoch-wise shuffled stream per task
        st = streams[task]
        while len(st) < n:
            perm = list(pools[task])
            order_rng.shuffle(perm)
            st.extend(perm)
        out, streams[task] = st[:n], st[n:]
        return out

    # Balanced curriculum, only so that a half-learnt checkpoint exists. With a
    # fixed 50/50 mix NLI jumps from chance to ~95 % within ~30 steps while MC
    # stays at chance for ~200 steps, so no step has both tasks half-learnt.
    # So batches start MC-heavy (NLI gets 1/16 of each batch), and every
    # evaluation re-balances the next steps' batches towards the task that is
    # behind (progress above chance); neither task ever gets less than 1/16
    # (with none at all the other task is forgotten at once). Once both are
    # past 60 % progress, or after --weak-max-step, the mix is --nli-frac.
    lo = max(1, args.batch // 16)
    phase = "balance" if args.curriculum else "both"
    if args.curriculum:
        per_step.update(nli=lo, mc=args.batch - lo)

    def rebalance(acc):
        nonlocal phase
        prog_mc = max(0.0, (acc["mc"] - 0.2) / 0.8)
        prog_nli = max(0.0, (acc["nli"] - 1 / 3) / (2 / 3))
        if min(prog_mc, prog_nli) >= 0.6:
            phase = "both"
            n = n_nli
        elif prog_mc - prog_nli > 0.1:
            n = args.batch - lo
        else:
            n = lo
        per_step.update(nli=n, mc=args.batch - n)

    history = []
    t_train = time.time()
    for step in range(1, args.steps + 1):
        if phase != "both" and step > weak_max:
            phase = "both"
            per_step.update(nli=n_nli, mc=args.batch - n_nli)
        idx = draw("mc", per_step["mc"]) + draw("nli", per_step["nli"])
        batch = [examples[i] for i in idx]
        n_target = sum(len(a) for _, _, a in batch)
        loss = 0.0
        for task in ("mc", "nli"):
            group = [(p, a) for t, p, a in batch if t == task]
            if group:
                loss = loss + batch_loss(model, group, prefixes[task], tok.pad_token_id)
        loss = loss / n_target
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.eval_every == 0 and (step <= weak_max or args.eval_all):
            acc, _ = evaluate(model, tok, data)
            history.append((step, acc))
            print(f"step {step:5d} loss {loss.item():.4f} mc {acc['mc']:.3f} nli {acc['nli']:.3f} "
                  f"[mc {per_step['mc']} nli {per_step['nli']}] ({time.time() - t_train:.0f}s)", flush=True)
            if phase == "balance":
                rebalance(acc)
            in_band = all(WEAK_BAND[0] <= a <= WEAK_BAND[1] for a in acc.values())
            score = max(abs(a - 0.5) for a in acc.values())
            if step <= weak_max and (weak is None or (in_band, -score) > (weak[0], -weak[1])):
                weak = (in_band, score, step, acc, copy.deepcopy(model.state_dict()))
        elif step % 100 == 0:
            print(f"step {step:5d} loss {loss.item():.4f} ({time.time() - t_train:.0f}s)", flush=True)
    train_s = time.time() - t_train
    model.eval()

    if weak is None:
        raise SystemExit("no checkpoint was evaluated before --weak-max-step")
    if not weak[0]:
        print(f"WARNING: no evaluated step had both accuracies in {list(WEAK_BAND)}; "
              "using the one closest to 0.5", file=sys.stderr)

    gen_config = GenerationConfig(
        do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    out_dir: Path = args.out
    results = {}
    final_state = copy.deepcopy(model.state_dict())
    for name, step, state, role in (
        ("tiny-ja-good", args.steps, final_state,
         "This is the **good** checkpoint (final step of the run)."),
        ("tiny-ja-weak", weak[2], weak[4],
         "This is the **weak** checkpoint: an early step of the same run as `tiny-ja-good`, "
         "kept on purpose so that a regression gate comparing it with `tiny-ja-good` fails "
         "with flipped items. During the first half of the run the script balances the two "
         "tasks in each batch so that both are learnt at about the same pace, evaluates every "
         "--eval-every steps, and keeps the step whose test accuracies are closest to 50 % on "
         "both tasks (wanted: 30-70 % each)."),
    ):
        d = out_dir / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        model.load_state_dict(state)
        model.save_pretrained(d, safe_serialization=True)
        gen_config.save_pretrained(d)
        tok.save_pretrained(d)
        _portable_tokenizer_config(d)
        results[name] = (step, d, role)

    # Reload from disk exactly as a user would, evaluate, and check batched == unbatched.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    summary = {}
    for name, (step, d, role) in results.items():
        rtok = AutoTokenizer.from_pretrained(d)
        rmodel = AutoModelForCausalLM.from_pretrained(d)
        rmodel.eval()
        acc, preds = evaluate(rmodel, rtok, data, batch_size=64)
        _, preds1 = evaluate(rmodel, rtok, data, batch_size=1)
        same = preds == preds1
        # raw-tokenizer parity: AutoTokenizer ids == ids used in training
        probe = training_prompt("nli", data["nli"]["test"][0])
        assert rtok(probe).input_ids == tok(probe, add_special_tokens=False).input_ids
        size = (d / "model.safetensors").stat().st_size
        summary[name] = {"step": step, "acc": acc, "batched_equals_unbatched": same, "bytes": size}
        print(f"{name}: step {step} mc {acc['mc']:.4f} nli {acc['nli']:.4f} "
              f"batched==unbatched {same} model.safetensors {size / 1e6:.2f} MB")
        n_mc, n_nli = len(data["mc"]["test"]), len(data["nli"]["test"])
        card = MODEL_CARD.format(
            license=args.license, name=name, role=role, steps=args.steps, threads=args.threads,
            train_s=train_s, vocab=len(rtok), eos=EOS_TOKEN, eos_id=rtok.eos_token_id,
            pad=PAD_TOKEN, pad_id=rtok.pad_token_id, hidden=args.hidden, layers=args.layers,
            heads=args.heads, ff=args.ff, params=n_params, n_train=len(examples), lr=args.lr,
            batch=args.batch, step=step, n_mc=n_mc, n_nli=n_nli,
            acc_mc=acc["mc"], hit_mc=round(acc["mc"] * n_mc),
            acc_nli=acc["nli"], hit_nli=round(acc["nli"] * n_nli),
            chat_template=CHAT_TEMPLATE,
            license_name={"apache-2.0": "Apache-2.0"}.get(args.license, args.license),
        )
        (d / "README.md").write_text(card, encoding="utf-8")
        if not same:
            print(f"WARNING: {name}: batched and unbatched answers differ", file=sys.stderr)
    print(f"training {train_s:.1f} s, total {time.time() - t0:.1f} s")
    print(json.dumps({k: {kk: vv for kk, vv in v.items()} for k, v in summary.items()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
