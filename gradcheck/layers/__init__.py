"""Reference layers: forward and backward side by side, each checked by `gradcheck run all`."""
