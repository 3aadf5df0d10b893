#!/usr/bin/env python
"""The pooling study: sentence pooling (cls, last, mean, max, weighted sum, weighted mean, attention) x backbones
(encoders and decoders) x seeds, frozen (linear probe) and fully fine-tuned, on a sentiment dataset.

    # SST-2 on a GPU, the three default backbones (PoNet, BERT, GPT-2), every pooling mode, 3 seeds:
    accelerate launch finetune/run_pooling_study.py --output_dir outputs/pooling_study

    # IMDb, two backbones, a few modes (and a concatenation), 2 seeds:
    accelerate launch finetune/run_pooling_study.py --dataset_name imdb --max_length 512 \\
        --model_name_or_path bert-base-uncased gpt2 --pooling cls last mean max mean+max --seeds 1 2

    # Local data (csv / tsv / json / jsonl with a text and a label column):
    python finetune/run_pooling_study.py --train_file train.csv --validation_file dev.csv ...

Run the same command again to resume an interrupted sweep, or to extend it with more backbones, modes or seeds:
the runs already in `<output_dir>/pooling_study.csv` are skipped. The logic lives in
`modeling_ponet/pooling_study.py`.
"""

import argparse

from modeling_ponet import training as T
from modeling_ponet.pooling_study import add_study_args, check_study_args, run_study


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_args(parser)
    args = parser.parse_args(argv)
    check_study_args(args)
    return args


def main(argv=None):
    args = parse_args(argv)
    accelerator = T.build_accelerator(args)
    T.setup_logging(accelerator)
    accelerator.print(f"Pooling study on {accelerator.num_processes} process(es), device {accelerator.device}, "
                      f"mixed precision {accelerator.mixed_precision}")
    result = run_study(args, accelerator)
    accelerator.print(f"Trained {result.num_trained} run(s), skipped {result.num_skipped} finished run(s); "
                      f"results in {result.csv_path}")
    return result


if __name__ == "__main__":
    main()
