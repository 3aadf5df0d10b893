"""The jobs: pretraining (MLM + SSO), GLUE and own-file classification, long documents, the pooling study."""
