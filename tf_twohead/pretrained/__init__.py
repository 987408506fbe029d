"""Pretrained starts: `model.pretrained` resolved, downloaded, converted, cached and
loaded, and `build_model(cfg)` (`load`); torchvision's state_dicts ported exactly
(`torchvision`) through a restricted, bounded `.pth` reader (`torchfile`)."""
