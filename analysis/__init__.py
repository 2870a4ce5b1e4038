"""Analysis: saliency maps, head comparison, sequential Jacobians and videos of gameplay."""
