"""The ``cellbus`` command: one launcher for every node, installed as a console script.

``pip install .`` makes ``cellbus``; ``bin/cellbus`` runs the same launcher from a checkout
after putting the project into ``.venv``. This package is the only code that imports every
component, to start them; the components themselves never import one another.
"""
