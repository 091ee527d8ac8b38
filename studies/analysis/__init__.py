"""Reading stored studies: tables by w and method, the verdict on the paper's claim, figures."""
