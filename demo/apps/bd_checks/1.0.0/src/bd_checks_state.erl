%%% @doc A supervised server keeping a list of items (1.0.0).
-module(bd_checks_state).
-behaviour(gen_server).

-export([start_link/0, add/1, reset/0, items/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

%% @doc Starts the server, registered.
-spec start_link() -> {ok, pid()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Adds an item (any term).
-spec add(term()) -> ok.
add(Item) -> gen_server:call(?MODULE, {add, Item}).

%% @doc Forgets every item.
-spec reset() -> ok.
reset() -> gen_server:call(?MODULE, reset).

%% @doc The items, newest first.
-spec items() -> [term()].
items() -> gen_server:call(?MODULE, items).

%% @private
init([]) -> {ok, #{items => []}}.

%% @private
handle_call({add, I}, _From, #{items := Is} = S) -> {reply, ok, S#{items := [I | Is]}};
handle_call(reset, _From, S) -> {reply, ok, S#{items := []}};
handle_call(items, _From, #{items := Is} = S) -> {reply, Is, S}.

%% @private
handle_cast(_Msg, S) -> {noreply, S}.

%% @private
code_change({down, _}, S, _Extra) -> {ok, maps:with([items], S)};
code_change(_Old, S, _Extra) -> {ok, S}.
