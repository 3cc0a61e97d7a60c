"""``create_market BTC-USD --tick-size 0.01 --lot-size 0.0001 [...]``: create a market and,
when missing, its assets. Running it again for an existing market changes nothing."""
from django.core.management.base import BaseCommand, CommandError

from exchange.errors import BourseError
from trading.services import market_create


class Command(BaseCommand):
    help = "Create a market (and its base/quote assets when they do not exist yet)."

    def add_arguments(self, parser):
        parser.add_argument("symbol", help="BASE-QUOTE, e.g. BTC-USD")
        parser.add_argument("--tick-size", required=True)
        parser.add_argument("--lot-size", required=True)
        parser.add_argument("--min-quantity", default="0")
        parser.add_argument("--min-notional", default="0")
        parser.add_argument("--maker-fee", default="0")
        parser.add_argument("--taker-fee", default="0")
        parser.add_argument("--max-price", help="largest price (default: derived from the quote asset's decimals)")
        parser.add_argument("--max-quantity", help="largest quantity (default: derived from the base asset's decimals)")
        parser.add_argument("--max-notional", help="largest price × quantity (default: derived from the quote asset's decimals)")
        parser.add_argument("--base-scale", type=int, help="decimals of the base asset if it is created")
        parser.add_argument("--quote-scale", type=int, help="decimals of the quote asset if it is created")

    def handle(self, *args, **opts):
        try:
            market, created = market_create(
                symbol=opts["symbol"],
                tick_size=opts["tick_size"],
                lot_size=opts["lot_size"],
                min_quantity=opts["min_quantity"],
                min_notional=opts["min_notional"],
                maker_fee_rate=opts["maker_fee"],
                taker_fee_rate=opts["taker_fee"],
                base_scale=opts["base_scale"],
                quote_scale=opts["quote_scale"],
                max_price=opts["max_price"],
                max_quantity=opts["max_quantity"],
                max_notional=opts["max_notional"],
            )
        except BourseError as exc:
            raise CommandError(f"{exc.detail} ({exc.code})") from None
        if created:
            self.stdout.write(f"Created market {market.symbol} (base {market.base_id}, quote {market.quote_id}).")
        else:
            self.stdout.write(f"Market {market.symbol} already exists; nothing changed.")
