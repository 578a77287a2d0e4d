"""Everything that touches a file.

    atomic.py       write a file completely or not at all
    images.py       read, resize and save images; the bundled ones
    weights.py      read scratchnst's weights layout; load_vgg19()
    convert.py      convert other VGG19 weights into that layout
    torchfile.py    read PyTorch checkpoints without running their pickles
    checkpoint.py   save and resume a stylization run
    plot.py         the loss curve
"""
