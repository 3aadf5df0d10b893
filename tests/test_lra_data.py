"""Long Range Arena data: the ListOps and Pathfinder generators against independent checks (a stack machine over
the written expressions, the exact length distribution of the published tree process, connected components of
the written images), each loader on files in the release's or the Hub dataset's own format (made here), the
real Fashion-MNIST files, the pixel-id rule and the task registry."""

import csv
import gzip
import logging
import statistics

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from ponet_training.data.lra import TASKS, encoding, images, listops, load_lra_dataset, pathfinder, snakes


# ----------------------------------------------------------------------------------------------------------
# ListOps
# ----------------------------------------------------------------------------------------------------------

LISTOPS_SIZES = {"train": 2400, "validation": 300, "test": 300}
OPERATIONS = {"[MIN": min, "[MAX": max, "[MED": lambda args: int(statistics.median(args)),
              "[SM": lambda args: sum(args) % 10}


@pytest.fixture(scope="session")
def listops_files(tmp_path_factory):
    splits, stats = listops.generate(11, LISTOPS_SIZES)
    folder = tmp_path_factory.mktemp("listops")
    listops.write(folder, splits, stats)
    return folder, stats


def read_tsv(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows[0] == ["Source", "Target"]
    return [(source, int(target)) for source, target in rows[1:]]


def stack_machine(tokens):
    """The value of the token string and its deepest operator nesting: operators and digits are pushed, `]` pops
    the arguments back to their operator and pushes the result."""
    stack, depth, deepest = [], 0, 0
    for token in tokens:
        if token in OPERATIONS:
            stack.append(token)
            depth += 1
            deepest = max(deepest, depth)
        elif token == "]":
            args = []
            while not isinstance(stack[-1], str):
                args.append(stack.pop())
            stack.append(OPERATIONS[stack.pop()](args))
            depth -= 1
        else:
            stack.append(int(token))
    assert len(stack) == 1 and depth == 0
    return stack[0], deepest


def pair_value(tokens):
    """The value of the parenthesised form read as LRA's left-nested pairs `( left right )`: an operator meeting
    an argument opens a call, a call meeting an argument takes it, a call meeting `]` returns."""
    def node(i):
        if tokens[i] != "(":
            return tokens[i], i + 1
        left, i = node(i + 1)
        right, i = node(i)
        assert tokens[i] == ")", "a pair has exactly two members"
        return (left, right), i + 1

    def value(tree):
        if isinstance(tree, str):
            return tree if tree in OPERATIONS or tree == "]" else int(tree)
        left, right = value(tree[0]), value(tree[1])
        if isinstance(left, str):
            return (left, [right])
        if right == "]":
            return OPERATIONS[left[0]](left[1])
        return (left[0], left[1] + [right])

    tree, end = node(0)
    assert end == len(tokens)
    return value(tree)


def exact_length_distribution(max_depth=10, operator_probability=0.25, arities=range(2, 11), top=2000):
    """P(length = n) of the published tree process (lra-setup.md's parameters), by dynamic programming over the
    depths; lengths of `top` and above are left out (they only grow)."""
    digit = np.zeros(top + 1)
    digit[1] = 1.0
    p = digit
    for _ in range(max_depth - 1):  # from the deepest level (only digits) up to the root
        children, operator = np.eye(1, top + 1, 0)[0], np.zeros(top + 1)
        for count in range(1, max(arities) + 1):
            children = np.convolve(children, p)[: top + 1]
            if count in arities:
                operator += children / len(arities)
        operator = np.concatenate([[0.0, 0.0], operator[: top - 1]])  # `[OP` and `]`
        p = (1 - operator_probability) * digit + operator_probability * operator
    return p


def test_listops_labels_agree_with_a_stack_machine_and_the_pair_structure_of_the_written_expression(listops_files):
    folder, _ = listops_files
    rows = [row for name in listops.SPLIT_FILES.values() for row in read_tsv(folder / name)]
    assert len(rows) == sum(LISTOPS_SIZES.values())
    depths = []
    for number, (source, target) in enumerate(rows):
        tokens = source.split(" ")
        value, deepest = stack_machine([token for token in tokens if token not in "()"])
        assert value == target, source[:200]
        if number % 10 == 0:  # the slower pair reading on a tenth
            assert pair_value(tokens) == target, source[:200]
        depths.append(deepest)
    assert max(depths) <= listops.Settings().max_depth - 1  # the depth limit only ever draws digits
    assert len({source for source, _ in rows}) == len(rows), "an expression appears twice"


def test_listops_reader_drops_parentheses_keeps_closing_brackets_and_maps_to_fixed_ids(listops_files):
    folder, _ = listops_files
    data = listops.load(folder)
    rows = read_tsv(folder / "basic_val.tsv")
    assert data["validation"].features["input_ids"].feature.dtype == "uint8"
    for (source, target), example in zip(rows, data["validation"]):
        expected = [token for token in source.split() if token not in ("(", ")")]
        assert [listops.VOCABULARY[i] for i in example["input_ids"]] == expected
        assert example["label"] == target
        assert encoding.PAD_ID not in example["input_ids"]
    assert listops.tokens("( ( ( [MAX 2 ) 9 ) ] )") == ["[MAX", "2", "9", "]"]
    assert len(listops.VOCABULARY) == TASKS["listops"].vocab_size == 16


def test_listops_lengths_follow_the_exact_distribution_of_the_published_tree_process(listops_files):
    folder, stats = listops_files
    lengths = np.array([len(listops.tokens(source)) for name in listops.SPLIT_FILES.values()
                        for source, _ in read_tsv(folder / name)])
    assert lengths.min() > 500 and lengths.max() < 2000
    p = exact_length_distribution()
    kept = np.zeros_like(p)
    kept[501:2000] = p[501:2000]
    acceptance = kept.sum()
    assert 0.075 < acceptance < 0.09  # lra-setup.md: about 8% of drawn trees are kept
    margin = 5 * np.sqrt(acceptance * (1 - acceptance) / stats["trees_drawn"])
    assert abs(stats["acceptance"] - acceptance) < margin, (stats["acceptance"], acceptance)
    exact_cdf = np.cumsum(kept / acceptance)
    sample_cdf = np.searchsorted(np.sort(lengths), np.arange(len(p)), side="right") / len(lengths)
    assert np.abs(sample_cdf - exact_cdf).max() < 1.95 / np.sqrt(len(lengths))  # Kolmogorov-Smirnov, 0.1%
    exact_median = np.searchsorted(exact_cdf, 0.5)
    assert abs(exact_median - 965) < 20  # lra-setup.md: median ~965


def test_listops_answers_0_and_9_are_the_most_frequent_at_the_published_17_percent(listops_files):
    folder, _ = listops_files
    answers = np.array([target for name in listops.SPLIT_FILES.values() for _, target in read_tsv(folder / name)])
    frequency = np.bincount(answers, minlength=10) / len(answers)
    margin = 0.005 + 4 * np.sqrt(0.17 * 0.83 / len(answers))  # the published figure is rounded to 1%
    assert abs(frequency[0] - 0.17) < margin and abs(frequency[9] - 0.17) < margin, frequency
    assert frequency[1:9].max() < min(frequency[0], frequency[9])


def test_listops_generation_is_a_function_of_the_seed_and_not_of_the_worker_count():
    sizes = {"train": 300, "validation": 100, "test": 100}  # two chunks: both workers draw
    one, _ = listops.generate(5, sizes)
    assert listops.generate(5, sizes)[0] == one
    assert listops.generate(5, sizes, workers=2)[0] == one
    assert listops.generate(6, sizes)[0]["train"] != one["train"]


def test_listops_validation_and_test_do_not_depend_on_the_train_size(listops_files):
    folder, _ = listops_files
    small, _ = listops.generate(11, {**LISTOPS_SIZES, "train": 300})
    assert small["validation"] == read_tsv(folder / "basic_val.tsv")
    assert small["test"] == read_tsv(folder / "basic_test.tsv")
    assert small["train"] == read_tsv(folder / "basic_train.tsv")[:300]


def test_listops_generator_refuses_to_overwrite_and_its_command_writes_the_release_files(tmp_path):
    listops.main(["--output_dir", str(tmp_path), "--num_train", "20", "--num_validation", "5", "--num_test", "5"])
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "basic_test.tsv", "basic_train.tsv", "basic_val.tsv", "generation.json"]
    assert open(tmp_path / "basic_train.tsv", "rb").read().startswith(b"Source\tTarget\r\n")  # csv's dialect
    with pytest.raises(FileExistsError, match="--overwrite"):
        listops.main(["--output_dir", str(tmp_path), "--num_train", "20"])


def write_release_tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["Source", "Target"])
        writer.writerows(rows)


def test_listops_reads_the_release_layout(tmp_path, caplog):
    release = tmp_path / "lra_release"
    rows = [("( ( ( [MAX 2 ) 9 ) ] )", 9), ("( ( ( ( [SM 7 ) ( ( ( [MED 1 ) 4 ) ] ) ) 8 ) ] )", 7)]
    for name in listops.SPLIT_FILES.values():
        write_release_tsv(release / "listops-1000" / name, rows)
    with caplog.at_level(logging.INFO):
        data = load_lra_dataset("listops", data_dir=release)
    assert data["test"]["input_ids"] == [[12, 3, 10, 15], [14, 8, 13, 2, 5, 15, 9, 15]]
    assert data["test"]["label"] == [9, 7]
    assert "files in" in data["train"].info.description  # not generated here
    assert "0 of 2 sequences truncated" in caplog.text

    write_release_tsv(release / "listops-1000" / "basic_val.tsv", [("( ( [MEAN 2 ) ] )", 2)])
    with pytest.raises(ValueError, match=r"basic_val.tsv:2: unknown ListOps token '\[MEAN'"):
        load_lra_dataset("listops", data_dir=release)
    write_release_tsv(release / "listops-1000" / "basic_val.tsv", [("( ( [MAX 2 ) ] )", 12)])
    with pytest.raises(ValueError, match="basic_val.tsv:2: the target must be a digit"):
        load_lra_dataset("listops", data_dir=release)
    with pytest.raises(FileNotFoundError, match="holds no ListOps files"):
        load_lra_dataset("listops", data_dir=tmp_path / "elsewhere")


# ----------------------------------------------------------------------------------------------------------
# Pathfinder
# ----------------------------------------------------------------------------------------------------------

PATHFINDER_IMAGES = {14: 160, 9: 80, 6: 80}


@pytest.fixture(scope="session")
def pathfinder_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pathfinder32")
    for contour_length, count in PATHFINDER_IMAGES.items():
        pathfinder.generate(root, contour_length, count, seed=3, images_per_shard=100)
    return root


def written_examples(folder):
    """(grey image, label) per metadata line, read with PIL and a plain split."""
    examples = []
    for metadata in sorted((folder / "metadata").iterdir(), key=lambda path: int(path.stem)):
        for line in metadata.read_text().splitlines():
            fields = line.split(" ")
            assert len(fields) == 11 and fields[0] == f"imgs/{metadata.stem}"
            with Image.open(folder / fields[0] / fields[1]) as image:
                assert image.mode == "L" and image.size == (32, 32)
                examples.append((np.asarray(image), int(fields[3])))
    return examples


def markers_joined(sample):
    """Whether the two markers' pixels lie in one 8-connected component of the drawn (non-black) pixels."""
    components, _ = ndimage.label(sample.image > 0, structure=np.ones((3, 3)))
    owners = [components[tuple(np.rint(marker).astype(int))] for marker in sample.markers]
    assert all(owners), "a marker's centre pixel is black"
    return owners[0] == owners[1]


@pytest.mark.parametrize("contour_length", sorted(PATHFINDER_IMAGES))
def test_pathfinder_markers_are_joined_by_drawn_pixels_exactly_when_the_label_says_so(pathfinder_root,
                                                                                      contour_length):
    examples = written_examples(pathfinder_root / pathfinder.folder_name(contour_length))
    assert len(examples) == PATHFINDER_IMAGES[contour_length]
    labels = [label for _, label in examples]
    assert 0.3 < np.mean(labels) < 0.7  # a fair coin per image
    settings = snakes.Settings(contour_length=contour_length)
    for index, (image, label) in enumerate(examples):
        sample = snakes.draw(settings, snakes.image_rng(3, settings, index))  # for the markers' positions
        assert (sample.image == image).all() and sample.label == label, f"image {index} is not what was written"
        assert markers_joined(sample) == bool(label), f"image {index}: label {label}"


def test_pathfinder_images_hold_two_snakes_and_distractors_at_the_published_sizes():
    settings = snakes.Settings()
    assert (settings.distractor_length, settings.num_distractors, settings.step) == (4, 5, 4.0)
    easy = snakes.Settings(contour_length=6)
    assert (easy.distractor_length, easy.num_distractors) == (2, 10)
    placed = []
    for index in range(20):
        sample = snakes.draw(settings, snakes.image_rng(0, settings, index))
        steps = [len(points) - 1 for points in sample.snakes]
        assert steps[:2] == [14, 14] and set(steps[2:]) <= {4}
        assert len(steps) - 2 + sample.distractors_left_out == 5
        placed.append(len(steps) - 2)
        lengths = np.linalg.norm(np.diff(sample.snakes[0], axis=0), axis=1)
        assert np.allclose(lengths, 4.0, atol=0.1)  # steps of paddle + 2 margins
    assert np.mean(placed) > 2


def test_pathfinder_published_dashes_draw_the_same_snakes_but_do_not_connect_them():
    joined_settings, dashed_settings = snakes.Settings(), snakes.Settings(dashed=True)
    agree = 0
    for index in range(60):
        joined = snakes.draw(joined_settings, snakes.image_rng(1, joined_settings, index))
        dashed = snakes.draw(dashed_settings, snakes.image_rng(1, dashed_settings, index))
        assert dashed.label == joined.label and (dashed.image <= joined.image).all()
        assert (dashed.image > 0).sum() < (joined.image > 0).sum()
        agree += markers_joined(dashed) == bool(dashed.label)
    assert agree < 0.8 * 60  # why we join the steps: with gaps, connectivity does not tell the label


def test_pathfinder_images_do_not_depend_on_workers_or_shards_and_the_folder_must_be_new(tmp_path):
    one = pathfinder.generate(tmp_path / "one", 9, 30, seed=4, workers=1, images_per_shard=30)
    two = pathfinder.generate(tmp_path / "two", 9, 30, seed=4, workers=2, images_per_shard=7)
    first, second = pathfinder.load(one, 9), pathfinder.load(two, 9)
    for split in ("train", "validation", "test"):
        assert first[split]["input_ids"] == second[split]["input_ids"]
        assert first[split]["label"] == second[split]["label"]
    other = pathfinder.load(pathfinder.generate(tmp_path / "three", 9, 30, seed=5), 9)
    assert other["train"]["input_ids"] != first["train"]["input_ids"]
    with pytest.raises(FileExistsError, match="is not empty"):
        pathfinder.generate(tmp_path / "one", 9, 30, seed=4)


def write_release_png(path, pixels, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)


def test_pathfinder_reads_the_release_layout_in_numeric_shard_order_and_skips_its_empty_file(tmp_path, caplog):
    folder = tmp_path / "lra_release" / "pathfinder32" / "curv_contour_length_14"
    rng = np.random.default_rng(0)
    expected = []
    for shard in (0, 2, 10):  # 10 after 2: numeric order
        lines = []
        for index in range(4):
            pixels = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
            write_release_png(folder / "imgs" / str(shard) / f"sample_{index}.png", pixels)
            label = int(rng.integers(2))
            lines.append(f"imgs/{shard} sample_{index}.png {index} {label} 1.0 14 4 2 0.5 1 1")
            expected.append((pixels, label))
        (folder / "metadata").mkdir(parents=True, exist_ok=True)
        (folder / "metadata" / f"{shard}.npy").write_text("\n".join(lines) + "\n")
    (folder / "imgs" / "10" / "sample_4.png").write_bytes(b"")  # as the release's one empty file
    with open(folder / "metadata" / "10.npy", "a") as handle:
        handle.write("imgs/10 sample_4.png 4 1 1.0 14 4 2 0.5 1 1\n")
    with caplog.at_level(logging.INFO):
        data = load_lra_dataset("pathfinder", data_dir=tmp_path / "lra_release")
    assert "skipped 1 empty image file(s)" in caplog.text and "imgs/10/sample_4.png" in caplog.text
    rows = [example for split in ("train", "validation", "test") for example in data[split]]
    assert [len(data[split]) for split in ("train", "validation", "test")] == [9, 1, 2]  # 80 / 10 / 10 of 12
    for (pixels, label), row in zip(expected, rows):
        assert row["input_ids"] == (pixels.reshape(-1).astype(int) + 1).tolist()
        assert row["label"] == label
    published = load_lra_dataset("pathfinder", data_dir=folder, published_pixel_ids=True)
    assert published["train"][0]["input_ids"] == expected[0][0].reshape(-1).tolist()

    write_release_png(folder / "imgs" / "0" / "sample_1.png", np.zeros((32, 32), np.uint8), mode="RGB")
    assert load_lra_dataset("pathfinder", data_dir=folder)["train"][1]["input_ids"] == [1] * 1024
    (folder / "imgs" / "0" / "sample_2.png").unlink()
    with pytest.raises(FileNotFoundError, match="sample_2.png: listed in the metadata but missing"):
        load_lra_dataset("pathfinder", data_dir=folder)


# ----------------------------------------------------------------------------------------------------------
# Images and the pixel-id rule
# ----------------------------------------------------------------------------------------------------------


def test_pixel_ids_keep_black_a_real_token_unless_the_published_rule_is_asked_for():
    pixels = np.array([[0, 1], [254, 255]], dtype=np.uint8)
    assert encoding.pixel_ids(pixels).tolist() == [1, 2, 255, 256]
    assert encoding.pixel_ids(pixels, published=True).tolist() == [0, 1, 254, 255]
    assert encoding.PAD_ID not in encoding.pixel_ids(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        encoding.pixel_ids(pixels.astype(np.int64))


def raw_idx(path):
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def test_the_real_fashion_mnist_files_are_read_padded_to_32x32_with_a_seeded_dev_split():
    # The files of Debian's dataset-fashion-mnist package (run_tests.sh installs it): never skipped.
    assert images.FASHION_MNIST_DIR.is_dir(), (
        f"{images.FASHION_MNIST_DIR} is missing: apt-get install dataset-fashion-mnist (run_tests.sh does)")
    data = load_lra_dataset("fashion_mnist_standin")
    assert {split: len(data[split]) for split in data} == {"train": 54_000, "validation": 6_000, "test": 10_000}
    train_labels = np.concatenate([data["train"]["label"], data["validation"]["label"]])
    assert (np.bincount(train_labels, minlength=10) == 6_000).all()  # the release's balance
    assert (np.bincount(data["test"]["label"], minlength=10) == 1_000).all()
    raw_test = raw_idx(images.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    assert raw_test.shape == (10_000, 28, 28)
    for row in (0, 4321, 9999):
        ids = np.array(data["test"][row]["input_ids"]).reshape(32, 32)
        assert (ids[2:30, 2:30] == raw_test[row].astype(int) + 1).all()
        assert (ids[:2] == 1).all() and (ids[:, :2] == 1).all() and (ids[30:] == 1).all()  # black, not padding
    assert data["test"]["label"][:5] == raw_idx(images.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")[:5].tolist()
    again = images.holdout(60_000, 0)
    assert len(again[1]) == 6_000 and (again[1] == images.holdout(60_000, 0)[1]).all()
    assert not (again[1] == images.holdout(60_000, 1)[1]).all()
    assert "stand-in" in data["train"].info.description
    assert TASKS["fashion_mnist_standin"].stands_in_for == "image" and "standin" in "fashion_mnist_standin"


def write_hub_parquet(folder, split, columns, features):
    from datasets import Dataset

    (folder / "plain_text").mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=features).to_parquet(folder / "plain_text" / f"{split}-00000-of-00001.parquet")


@pytest.fixture
def local_datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def test_cifar10_in_the_hub_layout_is_read_as_itu_601_grey_levels(tmp_path, local_datasets_cache):
    from datasets import ClassLabel, Features, Image as ImageFeature

    features = Features({"img": ImageFeature(), "label": ClassLabel(names=images.CIFAR10_LABELS)})
    rng = np.random.default_rng(1)
    colour = {split: rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
              for split, count in (("train", 20), ("test", 5))}
    labels = {split: rng.integers(0, 10, size=len(colour[split])).tolist() for split in colour}
    for split in colour:
        write_hub_parquet(tmp_path / "cifar10", split,
                          {"img": [Image.fromarray(image) for image in colour[split]], "label": labels[split]},
                          features)
    data = load_lra_dataset("image", data_dir=tmp_path / "cifar10", seed=0)
    assert [len(data[split]) for split in ("train", "validation", "test")] == [18, 2, 5]
    luma = colour["test"].astype(float) @ np.array([0.299, 0.587, 0.114])
    ids = np.array(data["test"]["input_ids"]).reshape(5, 32, 32)
    assert np.abs(ids - 1 - luma).max() <= 0.51  # ITU-R 601-2, rounded
    assert data["test"]["label"] == labels["test"]
    train_rows, validation_rows = images.holdout(20, 0)
    assert data["validation"]["label"] == [labels["train"][row] for row in validation_rows]
    assert data["train"].features["label"].names == images.CIFAR10_LABELS


# ----------------------------------------------------------------------------------------------------------
# Text and Retrieval
# ----------------------------------------------------------------------------------------------------------

REVIEWS = {("train", "neg"): ["Dull.<br /><br />Very dull.", "Zzz " * 1100],
           ("train", "pos"): ["Très bien — a delight ✓"],
           ("test", "neg"): ["Bad"], ("test", "pos"): ["Good!", "Great."]}


def test_imdb_from_an_aclimdb_folder_is_utf8_bytes_plus_one_with_truncation_logged(tmp_path, caplog):
    for (split, label), texts in REVIEWS.items():
        folder = tmp_path / "aclImdb" / split / label
        folder.mkdir(parents=True)
        for number, review in enumerate(texts):
            (folder / f"{number * 10 + 3}_{7 if label == 'pos' else 2}.txt").write_text(review, encoding="utf-8")
    (tmp_path / "aclImdb" / "train" / "unsup").mkdir()
    with caplog.at_level(logging.INFO):
        data = load_lra_dataset("text", data_dir=tmp_path)
    expected_train = REVIEWS[("train", "neg")] + REVIEWS[("train", "pos")]
    for row, review in zip(data["train"], expected_train):
        assert row["input_ids"] == [byte + 1 for byte in review.encode("utf-8")][:4000]
    assert data["train"]["label"] == [0, 0, 1]
    assert "IMDb train bytes: 1 of 3 sequences truncated to 4000 ids (400 ids dropped; longest 4400)" in caplog.text
    assert data["validation"]["input_ids"] == data["test"]["input_ids"] and len(data["test"]) == 3
    assert "validation is the test set" in caplog.text


def test_imdb_in_the_hub_layout_reads_the_same_bytes(tmp_path, local_datasets_cache):
    from datasets import ClassLabel, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    for split in ("train", "test"):
        texts = REVIEWS[(split, "neg")] + REVIEWS[(split, "pos")]
        labels = [0] * len(REVIEWS[(split, "neg")]) + [1] * len(REVIEWS[(split, "pos")])
        write_hub_parquet(tmp_path / "imdb", split, {"text": texts, "label": labels}, features)
    data = load_lra_dataset("text", data_dir=tmp_path / "imdb")
    assert data["train"][2]["input_ids"] == [byte + 1 for byte in REVIEWS[("train", "pos")][0].encode("utf-8")]
    assert data["train"].features["input_ids"].feature.dtype == "uint16"
    assert data["test"]["label"] == [0, 1, 1]


def test_aan_pairs_from_the_release_tsv_give_two_byte_sequences_per_example(tmp_path, caplog):
    folder = tmp_path / "lra_release" / "tsv_data"
    folder.mkdir(parents=True)
    pairs = [("1.0", "P01-1001", "W02-0202", "Parsing with ünïcode", "x" * 4100),
             ("0.0", "A00-0001", "B99-9999", "short", 'no "quoting" here')]
    for name in ("new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv"):
        (folder / name).write_bytes(b"".join("\t".join(pair).encode("utf-8") + b"\n" for pair in pairs))
    with caplog.at_level(logging.INFO):
        data = load_lra_dataset("retrieval", data_dir=tmp_path / "lra_release")
    row = data["validation"][0]
    assert row["input_ids"] == [byte + 1 for byte in "Parsing with ünïcode".encode("utf-8")]
    assert row["input_ids_2"] == [ord("x") + 1] * 4000
    assert data["test"]["label"] == [1, 0] and data["test"][1]["input_ids_2"][3] == ord('"') + 1
    assert "AAN new_aan_pairs.train.tsv text2: 1 of 2 sequences truncated to 4000 ids" in caplog.text
    (folder / "new_aan_pairs.eval.tsv").write_bytes(b"1.0\tA\tB\tonly four fields\n")
    with pytest.raises(ValueError, match="new_aan_pairs.eval.tsv:1: expected 5 tab-separated fields"):
        load_lra_dataset("retrieval", data_dir=folder)
    with pytest.raises(ValueError, match="retrieval needs data_dir"):
        load_lra_dataset("retrieval")


# ----------------------------------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------------------------------


def test_without_data_dir_the_generated_tasks_are_made_once_in_the_cache_and_read_from_it(tmp_path, monkeypatch,
                                                                                         caplog):
    monkeypatch.setenv("PONET_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(listops, "PUBLISHED_SIZES", {"train": 200, "validation": 30, "test": 30})
    with caplog.at_level(logging.INFO):
        first = load_lra_dataset("listops", seed=2, generated_size=100, workers=1)
        images_first = load_lra_dataset("pathfinder_easy", seed=2, generated_size=20, workers=1)
    assert caplog.text.count("Generating") == 2
    assert [len(first[split]) for split in ("train", "validation", "test")] == [100, 30, 30]
    assert [len(images_first[split]) for split in ("train", "validation", "test")] == [16, 2, 2]
    assert "generated by ponet_training" in first["train"].info.description
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = load_lra_dataset("listops", seed=2, generated_size=100, max_train_samples=10)
        images_again = load_lra_dataset("pathfinder_easy", seed=2, generated_size=20)
    assert "Generating" not in caplog.text and "keeping the first 10 of 100 train rows" in caplog.text
    assert again["train"]["input_ids"] == first["train"]["input_ids"][:10]
    assert images_again["test"]["input_ids"] == images_first["test"]["input_ids"]
    assert sorted(path.name for path in (tmp_path / "lra").iterdir()) == [
        f"listops-v{listops.GENERATOR_VERSION}-seed2-train100",
        f"pathfinder32-v{snakes.GENERATOR_VERSION}-seed2-images20-contour6"]


def test_the_registry_states_each_tasks_data_facts():
    assert sorted(TASKS) == ["fashion_mnist_standin", "image", "listops", "pathfinder", "pathfinder_easy",
                             "pathfinder_intermediate", "retrieval", "text"]
    facts = {name: (task.num_classes, task.max_length, task.vocab_size, task.pair) for name, task in TASKS.items()}
    assert facts["listops"] == (10, 2000, 16, False)
    assert facts["text"] == (2, 4000, 257, False) and facts["retrieval"] == (2, 4000, 257, True)
    assert facts["image"] == facts["fashion_mnist_standin"] == (10, 1024, 257, False)
    assert facts["pathfinder"] == (2, 1024, 257, False)
    assert TASKS["retrieval"].columns == ("input_ids", "input_ids_2") and TASKS["image"].columns == ("input_ids",)
    assert {task.source for task in TASKS.values()} == {"generated", "hub", "release files", "stand-in"}
    assert [name for name, task in TASKS.items() if task.stands_in_for] == ["fashion_mnist_standin"]
    assert TASKS["pathfinder"].sizes == {"train": 160_000, "validation": 20_000, "test": 20_000}
    with pytest.raises(ValueError, match="unknown LRA task 'cifar'"):
        load_lra_dataset("cifar")
