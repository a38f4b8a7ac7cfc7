"""Applications and their plugins: the contract plugins implement (:mod:`.interfaces`), what
plugin authors import (:mod:`.api`), the chain that turns plugin answers into one decision per
request (:mod:`.application`), the views plugins see (:mod:`.views`) and the loader. Never
imports the edges (:mod:`fms.server`, :mod:`fms.cluster`)."""
