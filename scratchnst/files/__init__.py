"""Everything that touches a file.

    atomic.py       write a file completely or not at all
    images.py       read, resize and save images; the bundled ones
    decode.py       any file Pillow opens, as RGB uint8
    weights.py      read scratchnst's weights layout; load_vgg19()
    convert.py      convert other VGG19 weights into that layout
    torchfile.py    read PyTorch checkpoints' two formats
    safe_pickle.py  a pickle reader that runs nothing
    checkpoint.py   save and resume a stylization run
    plot.py         the loss curve
"""
