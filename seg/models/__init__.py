"""Model builders: one module per architecture, each returning a keras.Model."""
