%%% @doc Makes the local fun that bd_checks_store keeps in ETS and in
%%% persistent_term; the appup loads this module, purging the fun's code.
-module(bd_checks_funs).
-export([make/0]).

%% @doc A local fun of this module.
-spec make() -> fun((integer()) -> integer()).
make() -> fun(X) -> X + 1 end.
