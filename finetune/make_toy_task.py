#!/usr/bin/env python
"""Write a learnable MRPC-style toy pair task (original GLUE tsv layout) for smoke tests and the demo.

    python finetune/make_toy_task.py --output_dir toy_mrpc
    python finetune/run_glue.py --task_name mrpc --glue_dir toy_mrpc --model_name_or_path <checkpoint> ...
"""

import argparse

from ponet_training.data.toy_pairs import toy_vocabulary_text, write_toy_pair_task


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", type=str, required=True, help="Folder for train.tsv, dev.tsv, test.tsv.")
    parser.add_argument("--n_train", type=int, default=800)
    parser.add_argument("--n_dev", type=int, default=200)
    parser.add_argument("--n_test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocabulary_file", type=str, default=None,
                        help="Also write every word of the task here (to train a tokenizer that covers it).")
    args = parser.parse_args(argv)
    paths = write_toy_pair_task(args.output_dir, args.n_train, args.n_dev, args.n_test, args.seed)
    if args.vocabulary_file:
        with open(args.vocabulary_file, "w", encoding="utf-8") as handle:
            handle.write(toy_vocabulary_text() + "\n")
    for split, path in paths.items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
