"""Model code beyond the Hub package (`modeling_ponet/`): encoders and heads the training library builds."""
