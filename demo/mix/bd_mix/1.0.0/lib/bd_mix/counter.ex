defmodule BdMix.Counter do
  @moduledoc "A GenServer counting calls; its state is an integer in 1.0.0."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, 0, name: __MODULE__)
  def bump, do: GenServer.call(__MODULE__, :bump)
  def version, do: "1.0.0"

  @impl true
  def init(n), do: {:ok, n}

  @impl true
  def handle_call(:bump, _from, n), do: {:reply, n + 1, n + 1}
end
