"""Neural network modules (timm/torchvision style: small nn.Modules, shapes in comments)."""
