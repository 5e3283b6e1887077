"""The `graph` block: TwHIN user vectors from the cart and purchase edges of the input window."""
