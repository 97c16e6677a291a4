"""``cog.coder.Coder``: custom encoders for types Cog does not know."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Type

__all__ = ["Coder"]


class Coder:
    """Turns values of one custom type into JSON objects and back.

    Register a subclass with :meth:`register`; :meth:`lookup` asks each registered
    coder's :meth:`factory` whether it handles a type.
    """

    _coders: ClassVar[List[Type[Coder]]] = []

    @staticmethod
    def register(coder: Type[Coder]) -> None:
        if coder not in Coder._coders:
            Coder._coders.append(coder)

    @staticmethod
    def lookup(tpe: Any) -> Optional[Coder]:
        for coder in Coder._coders:
            instance = coder.factory(tpe)
            if instance is not None:
                return instance
        return None

    @staticmethod
    def factory(tpe: Any) -> Optional[Coder]:
        del tpe
        return None

    def encode(self, x: Any) -> Dict[str, Any]:
        raise NotImplementedError

    def decode(self, x: Dict[str, Any]) -> Any:
        raise NotImplementedError
