"""The dbt-style project core: settings, seeds and SQL models loaded, ordered and built.

:mod:`.loader` reads the project, :mod:`.templating` renders models, :mod:`.dag` and
:mod:`.selector` choose and order nodes, :mod:`.materializations` builds each one (the ``enrich``
materialization hands over to :mod:`enrich.batch`), :mod:`.runner` runs a command and
:mod:`.artifacts` writes ``target/``.
"""
